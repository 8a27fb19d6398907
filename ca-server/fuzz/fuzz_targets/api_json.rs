//! Fuzzes the API's JSON request bodies: every body type the API accepts, then the checks the
//! service runs on their fields before touching the database (times, roles, reasons).
#![no_main]

use ca_server::api::{
    CreateUserRequest, DecisionRequest, LoginRequest, RevokeRequest, SetRolesRequest,
    StepUpRequest, SubmitRequest,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<LoginRequest>(data);
    let _ = serde_json::from_slice::<CreateUserRequest>(data);
    let _ = serde_json::from_slice::<DecisionRequest>(data);
    let _ = serde_json::from_slice::<StepUpRequest>(data);
    if let Ok(roles) = serde_json::from_slice::<SetRolesRequest>(data) {
        for role in &roles.roles {
            let _ = ca_core::role::Role::parse(role);
        }
    }
    if let Ok(submit) = serde_json::from_slice::<SubmitRequest>(data) {
        for time in [&submit.not_before, &submit.not_after].into_iter().flatten() {
            let _ = ca_server::api::parse_rfc3339(time);
        }
        let _ = ca_core::csr::VerifiedCsr::parse(submit.csr.as_bytes(), 2048);
    }
    if let Ok(revoke) = serde_json::from_slice::<RevokeRequest>(data) {
        let _ = ca_core::crl::RevocationReason::parse(&revoke.reason);
        if let Some(date) = &revoke.invalidity_date {
            let _ = ca_server::api::parse_rfc3339(date);
        }
    }
});
