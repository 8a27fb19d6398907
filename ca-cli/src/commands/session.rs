//! `login`, `logout`, `whoami`, `passwd`, `enrol`.

use std::path::PathBuf;

use anyhow::Context;
use ca_api::{
    EnrolRequest, LoginRequest, LoginResponse, PasswordChangeRequest, TotpEnrolment, UserView,
};
use clap::Args;
use serde::Serialize;

use crate::client::{exit, fail, read_secret_file, totp_code, CliResult, Connection, Session};
use crate::output;

/// `ca-cli login`.
#[derive(Args)]
#[command(
    after_help = "Example:\n  ca-cli --server https://127.0.0.1:8443 --ca-file mamori-dev/root-ca.pem login --username alice"
)]
pub struct Login {
    /// User name (prompted when omitted).
    #[arg(long, short)]
    pub username: Option<String>,
    /// Read the password from this file instead of prompting.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// The current TOTP code (prompted when omitted).
    #[arg(long)]
    pub totp: Option<String>,
}

/// Logs in and caches the token.
pub fn login(conn: &Connection, args: Login, json_out: bool) -> CliResult<()> {
    use std::io::IsTerminal;
    let username = match args.username {
        Some(u) => u,
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(fail(exit::USAGE, "pass --username in scripts"));
            }
            eprint!("User name: ");
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the user name")?;
            line.trim().to_string()
        }
    };
    let password = match &args.password_file {
        Some(path) => read_secret_file(path)?,
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(fail(exit::USAGE, "pass --password-file in scripts"));
            }
            zeroize::Zeroizing::new(
                rpassword::prompt_password("Password: ").context("reading the password")?,
            )
        }
    };
    let totp = totp_code(args.totp)?;
    let body: LoginResponse = conn.send_signed_out(
        "POST",
        "/api/v1/login",
        &LoginRequest {
            username: username.clone(),
            password: password.to_string(),
            totp,
        },
    )?;
    conn.save_session(&Session {
        server: conn.server.clone(),
        token: body.token.clone(),
        username: username.clone(),
    })?;
    if json_out {
        /// What `login --json` prints (never the token).
        #[derive(Serialize)]
        struct LoggedIn<'a> {
            username: &'a str,
            expires_at: &'a str,
        }
        output::print(
            true,
            &LoggedIn {
                username: &username,
                expires_at: &body.expires_at,
            },
            &[],
        );
    } else {
        out!(
            "logged in as {} until {}",
            output::shown(&username),
            output::local_time(&body.expires_at)
        );
    }
    if body.password_change_required {
        eprintln!(
            "パスワードを変更してください / the password was set by an admin: change it with `ca-cli passwd` before anything else"
        );
    }
    Ok(())
}

/// Ends the session on the server and forgets it locally.
pub fn logout(conn: &Connection) -> CliResult<()> {
    let result = conn.call("POST", "/api/v1/logout", None, true);
    conn.clear_session();
    result.map(|_| out!("logged out"))
}

/// Shows who is logged in.
pub fn whoami(conn: &Connection, json_out: bool) -> CliResult<()> {
    let me: UserView = conn.get("/api/v1/me")?;
    output::print(json_out, &me, &[("username", "USER"), ("roles", "ROLES")]);
    Ok(())
}

/// `ca-cli passwd`.
#[derive(Args)]
#[command(
    after_help = "Example:\n  ca-cli passwd --current-password-file old.txt --new-password-file new.txt"
)]
pub struct Passwd {
    /// Read the current password from this file instead of prompting.
    #[arg(long)]
    pub current_password_file: Option<PathBuf>,
    /// Read the new password (at least 12 characters) from this file instead of prompting.
    #[arg(long)]
    pub new_password_file: Option<PathBuf>,
}

/// Changes the logged-in user's own password.
pub fn passwd(conn: &Connection, args: Passwd, json_out: bool) -> CliResult<()> {
    use std::io::IsTerminal;
    let read = |file: &Option<PathBuf>,
                prompt: &str,
                confirm: bool|
     -> CliResult<zeroize::Zeroizing<String>> {
        if let Some(path) = file {
            return read_secret_file(path);
        }
        if !std::io::stdin().is_terminal() {
            return Err(fail(
                exit::USAGE,
                "pass --current-password-file and --new-password-file in scripts",
            ));
        }
        let first = zeroize::Zeroizing::new(
            rpassword::prompt_password(prompt).context("reading the password")?,
        );
        if confirm {
            let again = zeroize::Zeroizing::new(
                rpassword::prompt_password("Repeat the new password / もう一度: ")
                    .context("reading the password")?,
            );
            if *again != *first {
                return Err(fail(exit::USAGE, "the new passwords differ / 一致しません"));
            }
        }
        Ok(first)
    };
    let current = read(
        &args.current_password_file,
        "Current password / 現在のパスワード: ",
        false,
    )?;
    let new = read(
        &args.new_password_file,
        "New password / 新しいパスワード: ",
        true,
    )?;
    let view: UserView = conn.send(
        "POST",
        "/api/v1/passwd",
        &PasswordChangeRequest {
            current_password: current.to_string(),
            new_password: new.to_string(),
        },
    )?;
    if json_out {
        output::print(true, &view, &[]);
    } else {
        out!("password changed / パスワードを変更しました");
    }
    Ok(())
}

/// `ca-cli enrol`.
#[derive(Args)]
#[command(
    after_help = "Example:\n  ca-cli enrol --username alice            # asks for both halves of the code and a new password\n  ca-cli enrol --username alice --directory   # a directory account: the code only, no password"
)]
pub struct Enrol {
    /// Your user name.
    #[arg(long, short)]
    pub username: String,
    /// The enrolment code: the requester's half, then the approver's half (asked for when
    /// absent).
    #[arg(long)]
    pub code: Option<String>,
    /// Read the new password (at least 12 characters) from this file instead of prompting.
    #[arg(long, conflicts_with = "directory")]
    pub password_file: Option<PathBuf>,
    /// A directory account: you sign in with your directory password, so none is set here.
    #[arg(long)]
    pub directory: bool,
}

/// Enrols a created or reset account: sets its password and prints its new TOTP secret once.
pub fn enrol(conn: &Connection, args: Enrol, json_out: bool) -> CliResult<()> {
    use std::io::IsTerminal;
    let code = match args.code {
        Some(code) => zeroize::Zeroizing::new(code),
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(fail(exit::USAGE, "pass --code in scripts"));
            }
            let first = rpassword::prompt_password(
                "First half (from the admin who asked) / 依頼した管理者の半分: ",
            )
            .context("reading the code")?;
            let second =
                rpassword::prompt_password("Second half (from the approver) / 承認者の半分: ")
                    .context("reading the code")?;
            zeroize::Zeroizing::new(format!("{}-{}", first.trim(), second.trim()))
        }
    };
    let password = match &args.password_file {
        _ if args.directory => zeroize::Zeroizing::new(String::new()),
        Some(path) => read_secret_file(path)?,
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(fail(exit::USAGE, "pass --password-file in scripts"));
            }
            let first = zeroize::Zeroizing::new(
                rpassword::prompt_password("New password / 新しいパスワード: ")
                    .context("reading the password")?,
            );
            let again = zeroize::Zeroizing::new(
                rpassword::prompt_password("Repeat the new password / もう一度: ")
                    .context("reading the password")?,
            );
            if *again != *first {
                return Err(fail(exit::USAGE, "the new passwords differ / 一致しません"));
            }
            first
        }
    };
    let enrolment: TotpEnrolment = conn.send_signed_out(
        "POST",
        "/api/v1/enrol",
        &EnrolRequest {
            username: args.username.clone(),
            code: code.to_string(),
            new_password: password.to_string(),
        },
    )?;
    crate::commands::user::print_enrolment(&enrolment, json_out);
    if !json_out {
        out!(
            "scan it with your authenticator app, then: ca-cli login --username {}",
            args.username
        );
        out!("認証アプリで読み取り、ca-cli login でサインインしてください。");
    }
    Ok(())
}
