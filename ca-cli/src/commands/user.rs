//! `user add|roles|reset|enable|disable|list|unlock|changes|change|approve|reject`: account
//! administration under four eyes (admins ask; another admin or security officer approves).

use ca_api::{
    AccountChangeView, CreateUserRequest, SetRolesRequest, StepUpRequest, TotpEnrolment, UserView,
};
use clap::Subcommand;

use crate::client::{totp_code, CliResult, Connection};
use crate::output;

const COLUMNS: &[(&str, &str)] = &[
    ("username", "USER"),
    ("roles", "ROLES"),
    ("disabled", "DISABLED"),
    ("step_up_locked", "STEP-UP LOCKED"),
    ("locked_until", "LOGIN LOCKED UNTIL"),
    ("organization", "ORGANIZATION"),
    ("directory", "DIRECTORY"),
];

const CHANGE_COLUMNS: &[(&str, &str)] = &[
    ("id", "CHANGE"),
    ("kind", "KIND"),
    ("target", "USER"),
    ("roles", "NEW ROLES"),
    ("current_roles", "CURRENT ROLES"),
    ("requester", "REQUESTED BY"),
    ("status", "STATUS"),
    ("expires_at", "OPEN UNTIL"),
];

/// User commands. Creating, re-roling, resetting and enabling accounts are asked for by one
/// admin and applied when someone else approves (`ca-cli user approve`).
#[derive(Subcommand)]
pub enum UserCommand {
    /// Ask for a new account (applied when another admin or security officer approves). Prints
    /// your half of the one-time enrolment code: hand it to the new user yourself; the approver
    /// hands over the other half; the user runs `ca-cli enrol`.
    ///
    /// Example: ca-cli user add alice --roles security-officer --comment "new ward officer"
    /// Example: ca-cli user add acme --roles vendor --organization "Acme Medical" --email-domain acme.example
    /// Example: ca-cli user add hanako --roles security-officer --directory
    Add {
        /// User name.
        username: String,
        /// Roles, comma-separated: admin, security-officer, auditor, device-enroller, staff-requester, vendor.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// The organization registered on the account: a vendor's company, which its
        /// certificates' O must be (vendor-maintenance profile).
        #[arg(long)]
        organization: Option<String>,
        /// The e-mail domain registered on the account (a vendor's own).
        #[arg(long)]
        email_domain: Option<String>,
        /// The user signs in with their directory (LDAP / Active Directory) password; the server
        /// needs `[directory]`. They enrol only their TOTP (`ca-cli enrol --directory`).
        #[arg(long)]
        directory: bool,
        /// Your TOTP code (asked for when absent).
        #[arg(long)]
        totp: Option<String>,
        /// Why, for the approvers and the audit trail.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Lift a user's step-up lock (too many wrong codes) and login lockout; needs your TOTP
    /// code, and never for yourself.
    ///
    /// Example: ca-cli user unlock alice --comment "mistyped codes, confirmed by phone"
    Unlock {
        /// User name.
        username: String,
        /// Your TOTP code (asked for when absent).
        #[arg(long)]
        totp: Option<String>,
        /// Why, for the audit trail.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// List users.
    ///
    /// Example: ca-cli user list
    List,
    /// Disable a user at once: ends their sessions and cancels their pending requests.
    ///
    /// Example: ca-cli user disable former-vendor --comment "contract ended"
    Disable {
        /// User name.
        username: String,
        /// Your TOTP code (asked for when absent).
        #[arg(long)]
        totp: Option<String>,
        /// Why, for the audit trail.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Ask to enable a disabled user again (applied when approved).
    ///
    /// Example: ca-cli user enable bob --comment "back from leave"
    Enable {
        /// User name.
        username: String,
        /// Your TOTP code (asked for when absent).
        #[arg(long)]
        totp: Option<String>,
        /// Why, for the approvers and the audit trail.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Ask to replace a user's roles (never your own; applied when approved).
    ///
    /// Example: ca-cli user roles bob --roles security-officer,auditor
    Roles {
        /// User name.
        username: String,
        /// The new roles, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// Your TOTP code (asked for when absent).
        #[arg(long)]
        totp: Option<String>,
        /// Why, for the approvers and the audit trail.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Ask for a user's new password and TOTP (lost phone, forgotten password; applied when
    /// approved). Prints your half of the enrolment code, as `user add` does.
    ///
    /// Example: ca-cli user reset alice --comment "phone lost, confirmed in person"
    #[command(alias = "reset-totp")]
    Reset {
        /// User name.
        username: String,
        /// Your TOTP code (asked for when absent).
        #[arg(long)]
        totp: Option<String>,
        /// Why, for the approvers and the audit trail.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// List account changes (newest first).
    ///
    /// Example: ca-cli user changes --status pending
    Changes {
        /// Only this status: pending, applied, rejected, expired.
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one account change with its decisions.
    ///
    /// Example: ca-cli user change ac-3f2a...
    Change {
        /// Change id.
        id: String,
    },
    /// Approve an account change someone else asked for (with your TOTP code). The approval
    /// that applies a new account or a reset prints your half of the enrolment code.
    ///
    /// Example: ca-cli user approve ac-3f2a... --comment "confirmed with the ward head"
    Approve {
        /// Change id.
        id: String,
        /// Your TOTP code (asked for when absent).
        #[arg(long)]
        totp: Option<String>,
        /// Comment for the audit trail.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reject an account change (with your TOTP code).
    ///
    /// Example: ca-cli user reject ac-3f2a... --comment "nobody of that name on the roster"
    Reject {
        /// Change id.
        id: String,
        /// Your TOTP code (asked for when absent).
        #[arg(long)]
        totp: Option<String>,
        /// Comment for the audit trail.
        #[arg(long, default_value = "")]
        comment: String,
    },
}

/// Prints an enrolment: the URI and, for people, a QR code to scan.
pub fn print_enrolment(enrolment: &TotpEnrolment, json_out: bool) {
    if json_out {
        output::print(true, enrolment, &[]);
        return;
    }
    let uri = &enrolment.totp_uri;
    out!("user: {}", output::shown(&enrolment.user.username));
    out!("TOTP enrolment URI (shown once / 一度だけ表示): {uri}");
    if let Ok(code) = qrcode::QrCode::new(uri.as_bytes()) {
        out!(
            "{}",
            code.render::<qrcode::render::unicode::Dense1x2>()
                .quiet_zone(true)
                .build()
        );
    }
}

/// Prints an account change, and the half of the enrolment code it carries if any.
fn print_change(change: &AccountChangeView, json_out: bool) {
    output::print(json_out, change, CHANGE_COLUMNS);
    if json_out {
        return;
    }
    let target = output::shown(&change.target);
    if change.status == "pending" {
        out!(
            "waiting for {} approval(s) by another admin or security officer: ca-cli user approve {}",
            change.approvals_required,
            output::shown(&change.id)
        );
        out!("承認待ちです。別の管理者またはセキュリティ責任者が承認します。");
    }
    if let Some(part) = &change.enrolment_code_part {
        out!(
            "your half of {target}'s enrolment code (shown once): {}",
            output::shown(part)
        );
        out!("hand it to {target} in person; the other half comes from the other person.");
        out!(
            "{target} types both halves, requester's first, with: ca-cli enrol --username {target}"
        );
        out!("登録コードの半分です (一度だけ表示)。本人に直接渡してください。");
    }
}

/// Runs a user command.
pub fn run(conn: &Connection, command: UserCommand, json_out: bool) -> CliResult<()> {
    let step_up = |totp: Option<String>, comment: String| -> CliResult<StepUpRequest> {
        Ok(StepUpRequest {
            totp: totp_code(totp)?,
            comment,
        })
    };
    let change = |method: &str, path: String, body: serde_json::Value| -> CliResult<()> {
        let view: AccountChangeView = conn.send(method, &path, &body)?;
        print_change(&view, json_out);
        Ok(())
    };
    match command {
        UserCommand::Add {
            username,
            roles,
            organization,
            email_domain,
            directory,
            totp,
            comment,
        } => {
            let request = CreateUserRequest {
                username,
                roles,
                organization,
                email_domain,
                directory,
                totp: totp_code(totp)?,
                comment,
            };
            change("POST", "/api/v1/users".into(), body(&request)?)?;
        }
        UserCommand::Unlock {
            username,
            totp,
            comment,
        } => {
            let body = step_up(totp, comment)?;
            let view: UserView =
                conn.send("POST", &format!("/api/v1/users/{username}/unlock"), &body)?;
            output::print(json_out, &view, COLUMNS);
        }
        UserCommand::List => {
            let users: Vec<UserView> = conn.get("/api/v1/users")?;
            output::print(json_out, &users, COLUMNS)
        }
        UserCommand::Disable {
            username,
            totp,
            comment,
        } => {
            let body = step_up(totp, comment)?;
            let view: UserView =
                conn.send("POST", &format!("/api/v1/users/{username}/disable"), &body)?;
            output::print(json_out, &view, COLUMNS)
        }
        UserCommand::Enable {
            username,
            totp,
            comment,
        } => change(
            "POST",
            format!("/api/v1/users/{username}/enable"),
            body(&step_up(totp, comment)?)?,
        )?,
        UserCommand::Roles {
            username,
            roles,
            totp,
            comment,
        } => {
            let request = SetRolesRequest {
                roles,
                totp: totp_code(totp)?,
                comment,
            };
            change(
                "PUT",
                format!("/api/v1/users/{username}/roles"),
                body(&request)?,
            )?;
        }
        UserCommand::Reset {
            username,
            totp,
            comment,
        } => change(
            "POST",
            format!("/api/v1/users/{username}/reset"),
            body(&step_up(totp, comment)?)?,
        )?,
        UserCommand::Changes { status } => {
            let path = match status {
                Some(s) => format!("/api/v1/account-changes?status={s}"),
                None => "/api/v1/account-changes".into(),
            };
            let changes: Vec<AccountChangeView> = conn.get(&path)?;
            output::print(json_out, &changes, CHANGE_COLUMNS);
        }
        UserCommand::Change { id } => {
            let view: AccountChangeView = conn.get(&format!("/api/v1/account-changes/{id}"))?;
            output::print(json_out, &view, CHANGE_COLUMNS);
            if !json_out {
                for d in &view.decisions {
                    out!(
                        "{} {} at {}: {}",
                        output::shown(&d.approver),
                        output::shown(&d.verdict),
                        output::local_time(&d.decided_at),
                        output::shown(&d.comment)
                    );
                }
                out!("comment: {}", output::shown(&view.comment));
            }
        }
        UserCommand::Approve { id, totp, comment } => change(
            "POST",
            format!("/api/v1/account-changes/{id}/approve"),
            body(&step_up(totp, comment)?)?,
        )?,
        UserCommand::Reject { id, totp, comment } => change(
            "POST",
            format!("/api/v1/account-changes/{id}/reject"),
            body(&step_up(totp, comment)?)?,
        )?,
    }
    Ok(())
}

/// An API request body as JSON, for the one helper that sends every account change.
fn body<T: serde::Serialize>(request: &T) -> CliResult<serde_json::Value> {
    Ok(serde_json::to_value(request).map_err(anyhow::Error::from)?)
}
