//! `user add|list|disable|reset-totp|roles|unlock` (admins; unlock also officers) and `totp enroll`.

use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::{read_secret_file, totp_code, CliResult, Connection};
use crate::output;

const COLUMNS: &[(&str, &str)] = &[
    ("username", "USER"),
    ("roles", "ROLES"),
    ("disabled", "DISABLED"),
    ("step_up_locked", "STEP-UP LOCKED"),
    ("locked_until", "LOGIN LOCKED UNTIL"),
    ("organization", "ORGANIZATION"),
];

/// User commands.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user with roles; prints the TOTP enrolment URI and QR code once.
    ///
    /// Example: ca-cli user add alice --roles security-officer --password-file alice-initial-pw
    /// Example: ca-cli user add acme --roles vendor --organization "Acme Medical" --email-domain acme.example --password-file pw
    Add {
        /// User name.
        username: String,
        /// Roles, comma-separated: admin, security-officer, auditor, device-enroller, staff-requester, vendor.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// File holding the initial password (at least 12 characters).
        #[arg(long)]
        password_file: std::path::PathBuf,
        /// The organization registered on the account: a vendor's company, which its
        /// certificates' O must be (vendor-maintenance profile).
        #[arg(long)]
        organization: Option<String>,
        /// The e-mail domain registered on the account (a vendor's own).
        #[arg(long)]
        email_domain: Option<String>,
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
    /// Disable a user and end their sessions.
    ///
    /// Example: ca-cli user disable former-vendor
    Disable {
        /// User name.
        username: String,
    },
    /// Replace a user's roles (never your own).
    ///
    /// Example: ca-cli user roles bob --roles security-officer,auditor
    Roles {
        /// User name.
        username: String,
        /// The new roles, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
    },
    /// Give a user a new TOTP secret; prints the enrolment URI and QR code once.
    ///
    /// Example: ca-cli user reset-totp alice
    ResetTotp {
        /// User name.
        username: String,
    },
}

/// Prints an enrolment: the URI and, for people, a QR code to scan.
pub fn print_enrolment(value: &Value, json_out: bool) {
    if json_out {
        output::print(true, value, &[]);
        return;
    }
    let uri = value["totp_uri"].as_str().unwrap_or_default();
    println!("user: {}", output::field(&value["user"]["username"], "?"));
    println!("TOTP enrolment URI (shown once): {uri}");
    if let Ok(code) = qrcode::QrCode::new(uri.as_bytes()) {
        println!(
            "{}",
            code.render::<qrcode::render::unicode::Dense1x2>()
                .quiet_zone(true)
                .build()
        );
    }
}

/// Runs a user command.
pub fn run(conn: &Connection, command: UserCommand, json_out: bool) -> CliResult<()> {
    match command {
        UserCommand::Add {
            username,
            roles,
            password_file,
            organization,
            email_domain,
        } => {
            let password = read_secret_file(&password_file)?;
            let value = conn.json(
                "POST",
                "/api/v1/users",
                Some(
                    &json!({"username": username, "password": password.as_str(), "roles": roles,
                    "organization": organization, "email_domain": email_domain}),
                ),
            )?;
            print_enrolment(&value, json_out);
        }
        UserCommand::Unlock {
            username,
            totp,
            comment,
        } => {
            let code = totp_code(totp)?;
            output::print(
                json_out,
                &conn.json(
                    "POST",
                    &format!("/api/v1/users/{username}/unlock"),
                    Some(&json!({"totp": code, "comment": comment})),
                )?,
                COLUMNS,
            );
        }
        UserCommand::List => {
            output::print(json_out, &conn.json("GET", "/api/v1/users", None)?, COLUMNS)
        }
        UserCommand::Disable { username } => output::print(
            json_out,
            &conn.json("POST", &format!("/api/v1/users/{username}/disable"), None)?,
            COLUMNS,
        ),
        UserCommand::Roles { username, roles } => output::print(
            json_out,
            &conn.json(
                "PUT",
                &format!("/api/v1/users/{username}/roles"),
                Some(&json!({"roles": roles})),
            )?,
            COLUMNS,
        ),
        UserCommand::ResetTotp { username } => {
            let value = conn.json(
                "POST",
                &format!("/api/v1/users/{username}/totp/reset"),
                None,
            )?;
            print_enrolment(&value, json_out);
        }
    }
    Ok(())
}
