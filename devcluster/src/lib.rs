//! devcluster: a Kubernetes-API-compatible server on loopback, backed by an in-memory store, for
//! local mode and for every integration test. It never replaces Kubernetes beyond one machine.

pub mod runner;
