//! Mamori's service: storage, MFA login, the multi-factor issuance workflow, revocation, CRLs
//! and OCSP over HTTP, built on `ca-core`.
//!
//! Services by security context (docs/ARCHITECTURE.md): `accounts` (users, sessions, step-up),
//! `ra` (the workflow; never sees HTTP), `ca` (the only holder of CA keys), `ocsp`, `crl`,
//! `scep` (the SCEP RA keys and messages);
//! `http` parses, calls them and maps errors; `store` is the only place that knows diesel's
//! tables.

pub mod accounts;
pub use ca_api as api;
pub mod acme;
pub mod backup;
pub mod blocking;
pub mod bootstrap;
pub mod ca;
pub mod config;
pub mod crl;
pub mod custody;
pub mod directory_config;
pub mod disk;
pub mod error;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod notify_config;
pub mod ocsp;
pub mod ra;
pub mod scep;
pub mod secrets;
pub mod store;
pub mod token_config;
pub mod web;
