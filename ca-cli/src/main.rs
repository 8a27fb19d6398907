//! `ca-cli`: Mamori's command line for security officers, vendors, device enrollers, auditors
//! and scripts. It talks HTTP(S) only and never opens the database; private keys it generates stay
//! on the machine that runs it.

/// `println!` that ends the program quietly (exit 0) when standard output is a closed pipe
/// (`ca-cli cert list | head`), where `println!` would panic.
macro_rules! out {
    () => {
        $crate::output::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}

mod client;
mod commands;
mod output;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use client::{exit, CliResult, Connection};
use commands::*;

const EXIT_CODES: &str = "Exit codes:
  0  success
  1  error (bad file, local key work)
  2  usage error
  3  not logged in, session expired, or invalid credentials
  4  forbidden, or invalid second-factor code
  5  not found
  6  refused (invalid request, CSR rejected, conflict, broken audit chain, failed import rows)
  7  server unreachable or failing, or a wait that timed out
  8  ocsp check: the certificate is revoked or on hold
  9  ocsp check: the responder does not know the certificate";

/// Mamori command line.
#[derive(Parser)]
#[command(version, about, after_help = EXIT_CODES)]
struct Cli {
    /// API base URL.
    #[arg(
        long,
        global = true,
        env = "MAMORI_SERVER",
        default_value = "https://127.0.0.1:8443"
    )]
    server: String,
    /// Public (CRL/OCSP) base URL.
    #[arg(
        long,
        global = true,
        env = "MAMORI_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    public_url: String,
    /// Mamori's root certificate (PEM) to trust for HTTPS and to verify CRLs and OCSP.
    #[arg(long, global = true, env = "MAMORI_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Folder for the cached session (default: ~/.config/mamori, or MAMORI_CLI_HOME).
    #[arg(long, global = true)]
    config_dir: Option<PathBuf>,
    /// JSON output for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Log in with password and TOTP; caches the token (mode 0600).
    Login(session::Login),
    /// Log out.
    ///
    /// Example: ca-cli logout
    Logout,
    /// Show the logged-in user.
    ///
    /// Example: ca-cli whoami
    Whoami,
    /// Change your own password.
    Passwd(session::Passwd),
    /// Set your password and get your TOTP secret with the one-time enrolment code (new or
    /// reset accounts; no sign-in needed).
    Enrol(session::Enrol),
    /// Local keys.
    #[command(
        subcommand,
        after_help = "Examples:\n  ca-cli key generate --out acme.key\n  ca-cli key generate --algorithm rsa3072 --out server.key"
    )]
    Key(KeyCommand),
    /// Local CSRs.
    #[command(
        subcommand,
        after_help = "Example:\n  ca-cli csr create --key acme.key --profile vendor-maintenance --o \"Acme Medical\" --cn acme-engineer-1 --out acme.csr"
    )]
    Csr(CsrCommand),
    /// PKCS#12 bundles for browsers and Windows.
    #[command(
        subcommand,
        after_help = "Example:\n  ca-cli pkcs12 export --key k.pem --cert chain.pem --export-passphrase-file p --out staff.p12"
    )]
    Pkcs12(Pkcs12Command),
    /// Certificate requests.
    #[command(
        subcommand,
        after_help = "Examples:\n  ca-cli request list --status pending\n  ca-cli request show <request-id>\n  ca-cli request approve <request-id> --comment \"WO checked\""
    )]
    Request(request::RequestCommand),
    /// Certificates.
    #[command(
        subcommand,
        after_help = "Examples:\n  ca-cli cert list --subject EMP-0042 --status valid\n  ca-cli cert show issuing <serial>\n  ca-cli cert revoke issuing <serial> --reason key-compromise --comment \"terminal lost\""
    )]
    Cert(cert::CertCommand),
    /// CRLs.
    #[command(subcommand, after_help = "Example:\n  ca-cli crl fetch --list")]
    Crl(CrlCommand),
    /// OCSP.
    #[command(
        subcommand,
        after_help = "Example:\n  ca-cli ocsp check acme-chain.pem   # exit 0 good, 8 revoked or on hold, 9 unknown"
    )]
    Ocsp(OcspCommand),
    /// Users (admins).
    #[command(
        subcommand,
        after_help = "Examples:\n  ca-cli user list\n  ca-cli user add alice --roles security-officer --comment \"ward 3 officer\"\n  ca-cli user unlock bob --comment \"mistyped codes\""
    )]
    User(user::UserCommand),
    /// The audit trail (auditors).
    #[command(
        subcommand,
        after_help = "Examples:\n  ca-cli audit list --action certificate.revoke\n  ca-cli audit verify --checkpoints cp-2026-12.json"
    )]
    Audit(audit::AuditCommand),
    /// Devices in bulk.
    #[command(
        subcommand,
        after_help = "Example:\n  ca-cli device import fleet.csv --keys-dir fleet-keys"
    )]
    Device(DeviceCommand),
    /// One-time enrollment codes for devices that enroll through SCEP or EST (device enrollers).
    #[command(
        subcommand,
        after_help = "Examples:\n  ca-cli enrollment-code create --profile mdm-tablet --cn-pattern 'ward3-ipad-[0-9]+'\n  ca-cli enrollment-code list"
    )]
    EnrollmentCode(enrollment::EnrollmentCommand),
    /// Renew a certificate with itself (mutual TLS to the enrollment listener), for cron and
    /// systemd timers.
    Renew(renew::Renew),
    /// ACME: External Account Binding keys for certbot, lego and other ACME clients
    /// (security officers).
    #[command(
        subcommand,
        after_help = "Examples:\n  ca-cli acme eab create --profile tls-server --name '*.ehr.hospital.example' --label 'EHR front ends'\n  ca-cli acme eab list\n  ca-cli acme eab revoke eab-0190..."
    )]
    Acme(acme::AcmeCommand),
    /// Give your share of the CA's activation secret (custodians of a k-of-n quorum, with a
    /// TOTP code); the server unlocks when k custodians have.
    Activate(activate::Activate),
    /// The notification outbox: notices sent, waiting and failed (with why).
    #[command(
        subcommand,
        after_help = "Examples:\n  ca-cli notify list --status failed\n  ca-cli notify list --limit 20"
    )]
    Notify(notify::NotifyCommand),
    /// Leavers and movers: revoke a person's certificates and disable their account, one or
    /// an HR export's CSV (dry run first).
    #[command(
        subcommand,
        after_help = "Examples:\n  ca-cli staff leave STAFF-0420 --email taro.sato@hospital.example --username tsato --dry-run\n  ca-cli staff leave --csv leavers-2026-12.csv --dry-run --report dry.csv\n  ca-cli staff leave --csv leavers-2026-12.csv --report done.csv"
    )]
    Staff(staff::StaffCommand),
    /// Vendor oversight: the month's vendor certificates for the access-log review.
    #[command(
        subcommand,
        after_help = "Examples:\n  ca-cli vendor export --month 2026-11\n  ca-cli vendor export --month 2026-11 --out vendors-2026-11.csv"
    )]
    Vendor(vendor::VendorCommand),
    /// Break-glass: one security officer issues alone in an emergency; two others review.
    #[command(
        subcommand,
        name = "break-glass",
        after_help = "Examples:\n  ca-cli break-glass issue --profile staff --csr dr-sato.csr --emergency 'ER night shift: card reader failed' --out dr-sato.pem\n  ca-cli break-glass list --status awaiting-review\n  ca-cli break-glass review <id> --confirm --comment 'called the ER lead'"
    )]
    BreakGlass(break_glass::BreakGlassCommand),
    /// Where your notices go: approvals waiting for you, your certificates' expiry and
    /// revocation (with a TOTP code to change it).
    Contact(notify::Contact),
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Generate a private key (P-256 default, P-384, RSA-3072).
    Generate(key::Generate),
}

#[derive(Subcommand)]
enum CsrCommand {
    /// Create a CSR from flags.
    Create(csr::CsrCreate),
}

#[derive(Subcommand)]
enum Pkcs12Command {
    /// Bundle key, certificate and chain.
    Export(pkcs12::Pkcs12Export),
}

#[derive(Subcommand)]
enum CrlCommand {
    /// Fetch and verify a CRL; --list shows its entries.
    Fetch(revocation::CrlFetch),
}

#[derive(Subcommand)]
enum OcspCommand {
    /// Ask the certificate's OCSP responder and verify the answer.
    Check(revocation::OcspCheck),
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Register many devices from a CSV file.
    Import(device::Import),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if let Err(e) = run(cli) {
        eprintln!("ca-cli: {}", output::shown(&format!("{:#}", e.error)));
        std::process::exit(e.code);
    }
}

fn run(cli: Cli) -> CliResult<()> {
    let conn = Connection {
        server: cli.server.trim_end_matches('/').to_string(),
        ca_file: cli.ca_file.clone(),
        config_dir: cli
            .config_dir
            .clone()
            .unwrap_or_else(client::default_config_dir),
        client: std::sync::OnceLock::new(),
    };
    let json = cli.json;
    match cli.command {
        Command::Login(args) => session::login(&conn, args, json),
        Command::Logout => session::logout(&conn),
        Command::Whoami => session::whoami(&conn, json),
        Command::Passwd(args) => session::passwd(&conn, args, json),
        Command::Enrol(args) => session::enrol(&conn, args, json),
        Command::Key(KeyCommand::Generate(args)) => key::generate(args),
        Command::Csr(CsrCommand::Create(args)) => csr::csr_create(&conn, args),
        Command::Pkcs12(Pkcs12Command::Export(args)) => pkcs12::pkcs12_export(args),
        Command::Request(command) => request::run(&conn, command, json),
        Command::Cert(command) => cert::run(&conn, command, json),
        Command::Crl(CrlCommand::Fetch(args)) => {
            revocation::crl_fetch(&conn, &cli.public_url, args, json)
        }
        Command::Ocsp(OcspCommand::Check(args)) => revocation::ocsp_check(&conn, args, json),
        Command::User(command) => user::run(&conn, command, json),
        Command::Audit(command) => audit::run(&conn, &cli.public_url, command, json),
        Command::Device(DeviceCommand::Import(args)) => device::import(&conn, args, json),
        Command::EnrollmentCode(command) => enrollment::run(&conn, command, json),
        Command::Renew(args) => renew::run(cli.ca_file.as_deref(), args, json),
        Command::Acme(command) => acme::run(&conn, command, json),
        Command::Activate(args) => activate::run(&conn, args, json),
        Command::Notify(command) => notify::run(&conn, command, json),
        Command::BreakGlass(command) => break_glass::run(&conn, command, json),
        Command::Staff(command) => staff::run(&conn, command, json),
        Command::Vendor(command) => vendor::run(&conn, command, json),
        Command::Contact(args) => notify::contact(&conn, args, json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command, group or leaf, shows an example in its `--help`.
    #[test]
    fn every_command_help_has_an_example() {
        fn walk(command: &mut clap::Command, path: String, missing: &mut Vec<String>) {
            let help = command.render_long_help().to_string();
            if !path.is_empty() && !help.contains("Example") {
                missing.push(path.clone());
            }
            for sub in command.get_subcommands_mut() {
                let name = format!("{path} {}", sub.get_name());
                walk(sub, name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&mut Cli::command(), String::new(), &mut missing);
        missing.retain(|p| p.trim() != "help" && !p.ends_with(" help"));
        assert!(missing.is_empty(), "no example in --help of: {missing:?}");
    }
}
