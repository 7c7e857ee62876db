//! Whole-system tests and their support code (fake model API, harness over `sealpod up`).

pub mod fake_model;
