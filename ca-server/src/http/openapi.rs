//! The API's route table, with who may call each route, and the OpenAPI 3.1 document built
//! from it (served at `/api/v1/openapi.json`; the role tests read the same table).

/// One API route: method, path, who may call it, what it does.
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path under the API listener.
    pub path: &'static str,
    /// Roles allowed (`any` = any logged-in user, `public` = no login).
    pub roles: &'static str,
    /// Summary.
    pub summary: &'static str,
}

/// Every API route; the OpenAPI document and the role tests are built from this table.
pub const ROUTES: &[Route] = &[
    Route {
        method: "post",
        path: "/api/v1/login",
        roles: "public",
        summary: "Log in with password and TOTP code; returns a bearer token",
    },
    Route {
        method: "post",
        path: "/api/v1/logout",
        roles: "any",
        summary: "End the session",
    },
    Route {
        method: "post",
        path: "/api/v1/passwd",
        roles: "any (one's own password; the current one is asked again)",
        summary: "Change one's own password (required first when an admin set it)",
    },
    Route {
        method: "get",
        path: "/api/v1/me",
        roles: "any",
        summary: "Who am I",
    },
    Route {
        method: "get",
        path: "/api/v1/users",
        roles: "admin, auditor",
        summary: "List users",
    },
    Route {
        method: "post",
        path: "/api/v1/users",
        roles: "admin (with step-up; applied when approved: policies/accounts.toml)",
        summary: "Ask for a new account; answers 202 with the requester's half of the enrolment code",
    },
    Route {
        method: "put",
        path: "/api/v1/users/{username}/roles",
        roles: "admin (not oneself; with step-up; applied when approved)",
        summary: "Ask to replace a user's roles",
    },
    Route {
        method: "post",
        path: "/api/v1/users/{username}/reset",
        roles: "admin (not oneself; with step-up; applied when approved)",
        summary: "Ask for a new password and TOTP secret, set by the holder at enrolment",
    },
    Route {
        method: "post",
        path: "/api/v1/users/{username}/enable",
        roles: "admin (not oneself; with step-up; applied when approved)",
        summary: "Ask to enable a disabled user",
    },
    Route {
        method: "post",
        path: "/api/v1/users/{username}/disable",
        roles: "admin (not oneself; with step-up)",
        summary: "Disable a user at once (ends sessions, cancels pending requests)",
    },
    Route {
        method: "post",
        path: "/api/v1/users/{username}/unlock",
        roles: "admin, security-officer (not oneself; with the caller's step-up)",
        summary: "Lift a step-up lock and a login lockout",
    },
    Route {
        method: "get",
        path: "/api/v1/account-changes",
        roles: "admin, security-officer, auditor",
        summary: "List account changes (?status=pending)",
    },
    Route {
        method: "get",
        path: "/api/v1/account-changes/{id}",
        roles: "admin, security-officer, auditor",
        summary: "Show an account change",
    },
    Route {
        method: "post",
        path: "/api/v1/account-changes/{id}/approve",
        roles: "policies/accounts.toml approver roles (not the requester or the account; with step-up)",
        summary: "Approve an account change; the approval that applies a create or reset answers with the approver's half of the enrolment code",
    },
    Route {
        method: "post",
        path: "/api/v1/account-changes/{id}/reject",
        roles: "policies/accounts.toml approver roles (not the requester or the account; with step-up)",
        summary: "Reject an account change",
    },
    Route {
        method: "post",
        path: "/api/v1/enrol",
        roles: "public (with the whole one-time enrolment code)",
        summary: "Set one's own password and get one's TOTP secret (created or reset accounts)",
    },
    Route {
        method: "get",
        path: "/api/v1/profiles",
        roles: "any",
        summary: "List certificate profiles",
    },
    Route {
        method: "post",
        path: "/api/v1/requests",
        roles: "the profile's requester roles",
        summary: "Submit a CSR under a profile",
    },
    Route {
        method: "get",
        path: "/api/v1/requests",
        roles: "any (own requests; officers, admins, auditors all)",
        summary: "List requests",
    },
    Route {
        method: "get",
        path: "/api/v1/requests/{id}",
        roles: "any (own; officers, admins, auditors all)",
        summary: "Show a request",
    },
    Route {
        method: "post",
        path: "/api/v1/requests/{id}/approve",
        roles: "the profile's approver roles, not the requester",
        summary: "Approve with a fresh TOTP code",
    },
    Route {
        method: "post",
        path: "/api/v1/requests/{id}/reject",
        roles: "the profile's approver roles, not the requester",
        summary: "Reject with a fresh TOTP code",
    },
    Route {
        method: "get",
        path: "/api/v1/requests/{id}/certificate",
        roles: "requester; officers, admins, auditors",
        summary: "The issued certificate with chain (PEM)",
    },
    Route {
        method: "get",
        path: "/api/v1/certificates",
        roles: "any (own; officers, admins, auditors all)",
        summary: "List certificates",
    },
    Route {
        method: "get",
        path: "/api/v1/certificates/{ca}/{serial}",
        roles: "any (own; officers, admins, auditors all)",
        summary: "Show or download a certificate (format=json|pem|der)",
    },
    Route {
        method: "post",
        path: "/api/v1/certificates/{ca}/{serial}/revoke",
        roles: "security-officer",
        summary: "Revoke with a reason and a fresh TOTP code",
    },
    Route {
        method: "post",
        path: "/api/v1/certificates/{ca}/{serial}/hold",
        roles: "security-officer",
        summary: "Put on hold (certificateHold)",
    },
    Route {
        method: "post",
        path: "/api/v1/certificates/{ca}/{serial}/release",
        roles: "security-officer",
        summary: "Release from hold",
    },
    Route {
        method: "get",
        path: "/api/v1/audit",
        roles: "auditor, admin",
        summary: "Audit entries",
    },
    Route {
        method: "get",
        path: "/api/v1/audit/verify",
        roles: "auditor, admin",
        summary: "Verify the audit hash chain and the signed checkpoints stored with it",
    },
    Route {
        method: "post",
        path: "/api/v1/audit/checkpoints",
        roles: "auditor, admin, security-officer",
        summary:
            "Sign a checkpoint of the audit chain's head now (also public: GET /audit/checkpoints)",
    },
    Route {
        method: "post",
        path: "/api/v1/enrollment-codes",
        roles: "the profile's requester roles (a device enroller)",
        summary: "Mint a one-time enrollment code (SCEP challenge password, EST Basic password) for one device under a profile, optionally bound to CN and SAN patterns; the answer is the only place the code appears",
    },
    Route {
        method: "get",
        path: "/api/v1/enrollment-codes",
        roles: "device enrollers, security-officer, admin, auditor",
        summary: "List enrollment codes (?profile=): state, minter, request; never the codes",
    },
    Route {
        method: "post",
        path: "/api/v1/enrollment-codes/{id}/revoke",
        roles: "the code's minter, security-officer, admin",
        summary: "End an unused enrollment code now",
    },
    Route {
        method: "post",
        path: "/api/v1/acme/eab",
        roles: "security-officer (with a TOTP code)",
        summary: "Mint an ACME External Account Binding key for one profile and a list of DNS names or *.domain patterns; the answer is the only place the HMAC key appears",
    },
    Route {
        method: "get",
        path: "/api/v1/acme/eab",
        roles: "security-officer, admin, auditor",
        summary: "List EAB keys (?profile=): scope, state, minter, bound account; never the keys",
    },
    Route {
        method: "post",
        path: "/api/v1/acme/eab/{id}/revoke",
        roles: "security-officer (with a TOTP code)",
        summary: "Revoke an EAB key; the ACME account it registered is deactivated",
    },
    Route {
        method: "get",
        path: "/api/v1/activate",
        roles: "any signed-in user",
        summary: "Where k-of-n activation stands: locked or not, shares given, shares needed, the current share set",
    },
    Route {
        method: "post",
        path: "/api/v1/activate",
        roles: "the share's own custodian (with a TOTP code)",
        summary: "Give one share of the activation secret (opened by ca-cli activate from the custodian's share file); k distinct shares unlock the CA keys",
    },
    Route {
        method: "get",
        path: "/api/v1/vendor-certificates",
        roles: "auditor, security-officer, admin",
        summary: "Every vendor certificate issued in a month (?month=YYYY-MM, Japan time): organisation, requester, work order, window, status, approvers; for the access-log review",
    },
    Route {
        method: "post",
        path: "/api/v1/staff/leave",
        roles: "security-officer (admin too to disable accounts; with a TOTP code unless dry_run)",
        summary: "Leavers and movers (1-1000): revoke every certificate with their staff id or e-mail (affiliationChanged or cessationOfOperation), disable their accounts; dry_run reports only",
    },
    Route {
        method: "post",
        path: "/api/v1/break-glass",
        roles: "security-officer (with a TOTP code and a stated emergency)",
        summary: "Break-glass: issue alone, at once, a short-lived certificate under a profile whose [break_glass] allows it; every officer is notified and two others must review it",
    },
    Route {
        method: "get",
        path: "/api/v1/break-glass",
        roles: "security-officer, admin, auditor",
        summary: "Break-glass issuances, newest first (?status=awaiting-review|confirmed|misuse|overdue|revoked-unreviewed)",
    },
    Route {
        method: "get",
        path: "/api/v1/break-glass/{id}",
        roles: "security-officer, admin, auditor",
        summary: "One break-glass issuance with its reviews",
    },
    Route {
        method: "post",
        path: "/api/v1/break-glass/{id}/review",
        roles: "security-officer other than the issuer (with a TOTP code)",
        summary: "Review a break-glass issuance: confirm, or misuse (revokes it at once, privilegeWithdrawn)",
    },
    Route {
        method: "get",
        path: "/api/v1/notifications",
        roles: "admin, security-officer, auditor",
        summary: "The notification outbox, newest first (?status=pending|sent|failed&limit=): event, channel, recipient, attempts, the last error",
    },
    Route {
        method: "get",
        path: "/api/v1/me/contact",
        roles: "any signed-in user",
        summary: "Where the caller's notices go (waiting approvals, their certificates' expiry, revocation, hold)",
    },
    Route {
        method: "put",
        path: "/api/v1/me/contact",
        roles: "any signed-in user (with a TOTP code)",
        summary: "Set or clear (email null) where the caller's notices go; audited as user.contact",
    },
    Route {
        method: "get",
        path: "/api/v1/openapi.json",
        roles: "public",
        summary: "This document",
    },
];

/// The OpenAPI 3.1 document generated from [`ROUTES`].
pub fn openapi() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| serde_json::json!({}));
        let mut operation = serde_json::json!({
            "summary": route.summary,
            "description": format!("Roles: {}", route.roles),
            "responses": {
                "200": {"description": "OK"},
                "4XX": {"description": "Problem details (RFC 9457)", "content": {"application/problem+json": {}}}
            }
        });
        if route.roles != "public" {
            operation["security"] = serde_json::json!([{"bearer": []}]);
        }
        entry[route.method] = operation;
    }
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {"title": "Mamori API", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    })
}
