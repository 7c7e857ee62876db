//! Types shared by every sealpod part: the `Agent`, `AgentRevision`, `Session`, `Credential` and `Schedule` custom
//! resources, API ids and their object names, condition/label/annotation/field-manager constants,
//! sealing crypto and redacting secret types.
//!
//! This crate does no I/O: it must stay usable from the operator, the API server, the sidecar, the
//! runtime and tests alike.

pub mod address;
pub mod agent;
pub mod common;
pub mod conditions;
pub mod crds;
pub mod credential;
pub mod ids;
pub mod labels;
pub mod provider;
pub mod proxy_config;
pub mod revision;
pub mod runtime_api;
pub mod runtime_token;
pub mod schedule;
pub mod sealing;
pub mod secret;
pub mod session;

pub use agent::{Agent, AgentSpec, AgentStatus};
pub use credential::{Credential, CredentialSpec, CredentialStatus};
pub use revision::{AgentRevision, AgentRevisionSpec, AgentRevisionStatus};
pub use schedule::{Schedule, ScheduleSpec, ScheduleStatus};
pub use session::{Session, SessionSpec, SessionStatus};
