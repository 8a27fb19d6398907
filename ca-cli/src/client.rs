//! Talking to the server: the HTTPS client trusting Mamori's root, the cached session token
//! (mode 0600 in the user's config folder), and turning problem details into one-line errors
//! with documented exit codes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context};
pub use ca_api::url_escape;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Exit codes (documented in `ca-cli --help` and the README).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Any other error (bad input file, local key work).
    pub const ERROR: i32 = 1;
    /// Usage error (clap).
    pub const USAGE: i32 = 2;
    /// Not logged in, session expired, or invalid credentials (HTTP 401).
    pub const AUTH: i32 = 3;
    /// Forbidden or invalid second factor (HTTP 403).
    pub const FORBIDDEN: i32 = 4;
    /// Not found (HTTP 404).
    pub const NOT_FOUND: i32 = 5;
    /// Refused: invalid request, CSR rejected, conflict (HTTP 400, 409, 413, 415, 422).
    pub const REFUSED: i32 = 6;
    /// Server unreachable or failing (network, HTTP 5xx), or a wait that timed out.
    pub const UNAVAILABLE: i32 = 7;
    /// `ocsp check`: the responder says the certificate is revoked (or on hold).
    pub const REVOKED: i32 = 8;
    /// `ocsp check`: the responder does not know the certificate.
    pub const UNKNOWN: i32 = 9;
}

/// An error with its exit code.
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub code: i32,
    /// The message.
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError {
            code: exit::ERROR,
            error: e.into(),
        }
    }
}

/// A result whose error carries an exit code.
pub type CliResult<T> = Result<T, CliError>;

/// Builds a `CliError` with a code.
pub fn fail(code: i32, message: impl Into<String>) -> CliError {
    CliError {
        code,
        error: anyhow!(message.into()),
    }
}

/// The cached session.
#[derive(Debug, Serialize, Deserialize)]
pub struct Session {
    /// API base URL it belongs to.
    pub server: String,
    /// Bearer token.
    pub token: String,
    /// User name.
    pub username: String,
}

/// Connection settings shared by every command.
#[derive(Debug, Clone)]
pub struct Connection {
    /// API base, e.g. `https://127.0.0.1:8443`.
    pub server: String,
    /// Mamori's root certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Folder for the session cache.
    pub config_dir: PathBuf,
    /// The HTTP client, built once (building one loads and parses the trust store).
    pub client: std::sync::OnceLock<reqwest::blocking::Client>,
}

impl Connection {
    fn session_path(&self) -> PathBuf {
        self.config_dir.join("session.json")
    }

    /// An HTTP client trusting the configured root (and no other, when one is given).
    pub fn http(&self) -> CliResult<reqwest::blocking::Client> {
        if let Some(client) = self.client.get() {
            return Ok(client.clone());
        }
        let client = self.build_client()?;
        Ok(self.client.get_or_init(|| client).clone())
    }

    fn build_client(&self) -> CliResult<reqwest::blocking::Client> {
        let mut builder = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60));
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading the root certificate {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("parsing {}", path.display()))?;
            builder = builder
                .add_root_certificate(cert)
                .tls_built_in_root_certs(false);
        }
        Ok(builder.build().context("building the HTTP client")?)
    }

    /// Stores the session with owner-only permissions.
    pub fn save_session(&self, session: &Session) -> CliResult<()> {
        std::fs::create_dir_all(&self.config_dir)
            .with_context(|| format!("creating {}", self.config_dir.display()))?;
        let path = self.session_path();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        use std::io::Write;
        let mut file = options
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        file.write_all(serde_json::to_string(session)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }

    /// The cached session for this server.
    pub fn session(&self) -> CliResult<Session> {
        let path = self.session_path();
        let text = std::fs::read_to_string(&path)
            .map_err(|_| fail(exit::AUTH, "not logged in: run `ca-cli login`"))?;
        let session: Session = serde_json::from_str(&text).map_err(|_| {
            fail(
                exit::AUTH,
                format!(
                    "damaged session file {}: run `ca-cli login`",
                    path.display()
                ),
            )
        })?;
        if session.server != self.server {
            return Err(fail(
                exit::AUTH,
                format!(
                    "logged in to {}, not {}: run `ca-cli login`",
                    session.server, self.server
                ),
            ));
        }
        Ok(session)
    }

    /// Forgets the session.
    pub fn clear_session(&self) {
        let _ = std::fs::remove_file(self.session_path());
    }

    /// Sends a request to the API and returns the response body, mapping errors.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        auth: bool,
    ) -> CliResult<reqwest::blocking::Response> {
        let client = self.http()?;
        let url = format!("{}{}", self.server.trim_end_matches('/'), path);
        let mut request = match method {
            "GET" => client.get(&url),
            "POST" => client.post(&url),
            "PUT" => client.put(&url),
            other => return Err(fail(exit::ERROR, format!("unsupported method {other}"))),
        };
        if auth {
            request = request.bearer_auth(self.session()?.token);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().map_err(|e| {
            fail(
                exit::UNAVAILABLE,
                format!("{method} {url}: {}", describe(&e)),
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().unwrap_or_default();
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| text.chars().take(200).collect());
        let code = match status.as_u16() {
            401 => exit::AUTH,
            403 => exit::FORBIDDEN,
            404 => exit::NOT_FOUND,
            400 | 409 | 413 | 415 | 422 => exit::REFUSED,
            _ => exit::UNAVAILABLE,
        };
        let hint = if status.as_u16() == 401 && auth {
            " (run `ca-cli login`)"
        } else {
            ""
        };
        Err(fail(
            code,
            format!("{method} {path}: {} {detail}{hint}", status.as_u16()),
        ))
    }

    /// Sends a request and parses a JSON answer (an empty body reads as `null`).
    fn json(&self, method: &str, path: &str, body: Option<&Value>) -> CliResult<Value> {
        let response = self.call(method, path, body, true)?;
        let text = response
            .text()
            .map_err(|e| fail(exit::UNAVAILABLE, e.to_string()))?;
        if text.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_str(&text)
            .with_context(|| format!("the server's answer to {path} is not JSON"))?)
    }

    /// `GET path`, read into the API's own type for that answer (`ca_api`).
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> CliResult<T> {
        self.typed("GET", path, None)
    }

    /// A list from the API: one page, or with `all` every page (following each answer's
    /// `Link: <...>; rel="next"`), with the total the server reported (`X-Total-Count`).
    pub fn get_list<T: DeserializeOwned>(&self, path: &str, all: bool) -> CliResult<Listed<T>> {
        let mut listed = Listed {
            items: Vec::new(),
            total: None,
        };
        let mut next = Some(path.to_string());
        while let Some(path) = next.take() {
            let response = self.call("GET", &path, None, true)?;
            let headers = response.headers();
            listed.total = headers
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let link = headers
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let page: Vec<T> = response.json().map_err(|e| {
                fail(
                    exit::UNAVAILABLE,
                    format!(
                        "the server's answer to GET {path} is not what this ca-cli expects: {e}"
                    ),
                )
            })?;
            listed.items.extend(page);
            if all {
                next = link;
            }
        }
        Ok(listed)
    }

    /// `POST path` without a body, read into the API's own type.
    pub fn post<T: DeserializeOwned>(&self, path: &str) -> CliResult<T> {
        self.typed("POST", path, None)
    }

    /// Sends `body` (an API request type) and reads the answer into the API's own type.
    pub fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> CliResult<T> {
        let body = serde_json::to_value(body).context("encoding the request")?;
        self.typed(method, path, Some(&body))
    }

    /// As [`Self::send`], without a session (login, enrolment).
    pub fn send_signed_out<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> CliResult<T> {
        let body = serde_json::to_value(body).context("encoding the request")?;
        let response = self.call(method, path, Some(&body), false)?;
        response.json().map_err(|e| {
            fail(
                exit::UNAVAILABLE,
                format!(
                    "the server's answer to {method} {path} is not what this ca-cli expects: {e}"
                ),
            )
        })
    }

    fn typed<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> CliResult<T> {
        let value = self.json(method, path, body)?;
        Ok(serde_json::from_value(value).with_context(|| {
            format!("the server's answer to {method} {path} is not what this ca-cli expects (versions differ?)")
        })?)
    }
}

/// A list the API answered: the items read, and how many match in all.
pub struct Listed<T> {
    /// The items, in the server's order.
    pub items: Vec<T>,
    /// How many match in all (`X-Total-Count`), when the server said.
    pub total: Option<u64>,
}

impl<T> Listed<T> {
    /// Says on standard error when the list shown is not all there is, so a cut-off list is
    /// never mistaken for the whole.
    pub fn footer(&self) {
        if let Some(total) = self.total {
            let shown = self.items.len() as u64;
            if shown < total {
                eprintln!(
                    "showing {shown} of {total}, newest first: --limit N or --all for more / \
                     {total} 件中 {shown} 件を新しい順に表示 (--all で全件)"
                );
            }
        }
    }
}

/// The target of a `Link` header's `rel="next"` (RFC 8288), as a path on this server.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
            .filter(|t| t.starts_with("/api/"))
    })
}

/// A transport error with every cause (`error sending request ...: tcp connect error:
/// Connection refused`), so that the message says what failed and where.
pub fn describe(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// The default config folder: `$MAMORI_CLI_HOME`, else `$XDG_CONFIG_HOME/mamori`, else `~/.config/mamori`.
pub fn default_config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MAMORI_CLI_HOME") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
        return PathBuf::from(dir).join("mamori");
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".config")
        .join("mamori")
}

/// A TOTP code from the flag or, on a terminal, a prompt.
pub fn totp_code(flag: Option<String>) -> CliResult<String> {
    if let Some(code) = flag {
        return Ok(code);
    }
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(fail(exit::USAGE, "a TOTP code is needed: pass --totp CODE"));
    }
    Ok(rpassword::prompt_password("TOTP code: ")
        .context("reading the TOTP code")?
        .trim()
        .to_string())
}

/// Reads a file's first line as a secret (passwords, passphrases).
pub fn read_secret_file(path: &std::path::Path) -> CliResult<zeroize::Zeroizing<String>> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    Ok(zeroize::Zeroizing::new(
        text.lines().next().unwrap_or_default().to_string(),
    ))
}

/// Percent-encodes a path segment or query value (unreserved characters stay).
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_and_escapes() {
        assert_eq!(
            next_link("</api/v1/certificates?limit=2&cursor=1.issuing.4a>; rel=\"next\""),
            Some("/api/v1/certificates?limit=2&cursor=1.issuing.4a".into())
        );
        assert_eq!(next_link("<https://elsewhere/x>; rel=\"next\""), None);
        assert_eq!(next_link("</api/v1/x>; rel=\"prev\""), None);
        assert_eq!(url_escape("CN=Sato Hanako&x"), "CN%3DSato%20Hanako%26x");
    }
}
