//! Mamori's service: storage, MFA login, the multi-factor issuance workflow, revocation, CRLs
//! and OCSP over HTTP, built on `ca-core`.
//!
//! `authority` holds the workflow and never sees HTTP; `http` parses, calls it and maps errors;
//! `store` is the only place that knows diesel's tables.

pub mod account_changes;
pub mod account_policy;
pub mod api;
pub mod audit_checkpoint;
pub mod audit_log;
pub mod auth;
pub mod authority;
pub mod backup;
pub mod bootstrap;
pub mod ca;
pub mod config;
pub mod crl;
pub mod enrolment;
pub mod error;
pub mod http;
pub mod local_accounts;
pub mod metrics;
pub mod ocsp;
pub mod password;
pub mod rate_limit;
pub mod review;
pub mod secrets;
pub mod session_cache;
pub mod step_up;
pub mod store;
