//! The README's walk-throughs, run as written: every command of the "Walk-throughs" section is
//! typed into a real bash on a pseudo-terminal, in order, and each prompt (password, TOTP code,
//! the halves of an enrolment code, a new password) is answered as the person would. A `<...>`
//! placeholder gets the id the command before printed, as a reader would copy it; a line whose
//! comment says "once per" runs once for each such id. Only the `cargo build` line (the test's
//! own build stands in) and the ports change. Each command must exit 0, or the code its comment
//! names ("# exit 8: ..."); a few outputs are checked too. An example that no longer works fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;

use ca_core::totp::TotpSecret;
use mamori_e2e::{binary, workspace_root, Backend, Person, Server};
use regex::Regex;
use rexpect::reader::{Options, ReadUntil};

/// The shell lines of the README's walk-through section, continuation lines joined, comment
/// lines dropped (trailing comments stay: they are part of what is pasted).
fn walkthrough_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let start = readme
        .find("## Walk-throughs")
        .expect("a walk-through section");
    let end = readme[start + 3..]
        .find("\n## ")
        .map(|i| start + 3 + i)
        .unwrap_or(readme.len());
    let mut lines = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in readme[start..end].lines() {
        if line.starts_with("```") {
            in_block = line == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        if !full.trim().is_empty() && !full.trim_start().starts_with('#') {
            lines.push(full);
        }
    }
    lines
}

/// The trailing comment of a line (after ` # `), if any.
fn comment(line: &str) -> &str {
    line.find("  #").map(|i| &line[i..]).unwrap_or("")
}

/// The config folder a line names with `--config-dir`, or "" for the default one.
fn config_dir(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "--config-dir")
        .map(|w| w[1].to_string())
        .unwrap_or_default()
}

/// The subcommand a `ca-cli` line runs (`login`, `enrol`, `user`, ...), after any global flags.
fn subcommand(line: &str) -> &str {
    let mut words = line.split_whitespace();
    if words.next() != Some("ca-cli") {
        return "";
    }
    while let Some(word) = words.next() {
        if word == "--config-dir" {
            words.next();
        } else if !word.starts_with('-') {
            return word;
        }
    }
    ""
}

/// The `--username` a line names, if any.
fn username(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "--username")
        .map(|w| w[1].to_string())
}

struct Walk<'a> {
    server: &'a Server,
    people: HashMap<String, Person>,
    /// Config folder -> the person logged in there.
    logged_in: HashMap<String, String>,
    /// New user -> the halves of their enrolment code, in the order they were printed.
    halves: HashMap<String, Vec<String>>,
    /// The ids of each kind the latest command that printed any of them printed.
    ids: HashMap<&'static str, Vec<String>>,
    /// Every command run, with its output and exit code.
    log: Vec<(String, String, i32)>,
}

const PROMPTS: &str = r"(Password: |TOTP code: |First half[^:\n]*: |Second half[^:\n]*: |New password[^:\n]*: |Repeat the new password[^:\n]*: )";

impl<'a> Walk<'a> {
    /// Who answers the prompts of `line`.
    fn person_of(&self, line: &str) -> String {
        if matches!(subcommand(line), "login" | "enrol") {
            return username(line).expect("login and enrol lines name the user");
        }
        self.logged_in
            .get(&config_dir(line))
            .cloned()
            .unwrap_or_else(|| panic!("nobody is logged in for {line}"))
    }

    fn answer(&mut self, line: &str, prompt: &str) -> String {
        let who = self.person_of(line);
        if prompt.starts_with("First half") || prompt.starts_with("Second half") {
            let halves = &self.halves[&who];
            assert_eq!(halves.len(), 2, "both halves of {who}'s code were printed");
            return halves[usize::from(prompt.starts_with("Second"))].clone();
        }
        if prompt.starts_with("New password") || prompt.starts_with("Repeat") {
            return format!("walk-through password of {who}");
        }
        let person = &self.people[&who];
        if prompt.starts_with("Password") {
            person.password.clone()
        } else {
            person.code()
        }
    }

    /// Remembers what a command printed that a later line needs.
    fn learn(&mut self, line: &str, output: &str) {
        let half =
            Regex::new(r"your half of (\S+)'s enrolment code \(shown once\): (\S+)").unwrap();
        for c in half.captures_iter(output) {
            self.halves
                .entry(c[1].to_string())
                .or_default()
                .push(c[2].to_string());
        }
        let kinds: [(&'static str, &str); 6] = [
            ("eab-kid", r"\b(eab-[0-9a-f]+)\b"),
            ("eab-hmac-key", r"eab-hmac-key\s+([A-Za-z0-9_-]{20,})"),
            ("code", r"\b([A-HJ-NP-Z2-9]{6}(?:-[A-HJ-NP-Z2-9]{6}){3})\b"),
            ("change-id", r"\b(ac-[0-9a-f]+)\b"),
            ("request-id", r"\b(req-[0-9a-f]+)\b"),
            ("serial", r"(?m)(?:^|\s)([0-9a-f]{30,40})(?:\s|$)"),
        ];
        for (kind, pattern) in kinds {
            let mut found: Vec<String> = Vec::new();
            for c in Regex::new(pattern).unwrap().captures_iter(output) {
                if !found.contains(&c[1].to_string()) {
                    found.push(c[1].to_string());
                }
            }
            if !found.is_empty() {
                self.ids.insert(kind, found);
            }
        }
        if subcommand(line) == "enrol" {
            let who = username(line).unwrap();
            let secret = Regex::new(r"secret=([A-Z2-7]+)")
                .unwrap()
                .captures(output)
                .unwrap_or_else(|| panic!("enrol printed a TOTP URI: {output}"))[1]
                .to_string();
            let password = format!("walk-through password of {who}");
            let person = Person::new(&who, &password, TotpSecret::from_base32(&secret).unwrap());
            self.people.insert(who, person);
        }
        if subcommand(line) == "login" {
            self.logged_in
                .insert(config_dir(line), username(line).unwrap());
        }
    }

    /// The line as it will be typed, once per id when it says "once per" (the first kind of
    /// placeholder; any other kind takes the first id printed).
    fn expand(&self, line: &str) -> Vec<String> {
        let placeholder = Regex::new(r"<([a-z-]+)>").unwrap();
        let mut kinds = placeholder.captures_iter(line).map(|c| c[1].to_string());
        let Some(kind) = kinds.next() else {
            return vec![line.to_string()];
        };
        let mut line = line.to_string();
        for other in kinds.filter(|k| *k != kind) {
            let ids = self
                .ids
                .get(other.as_str())
                .unwrap_or_else(|| panic!("no <{other}> printed before: {line}"));
            line = line.replace(&format!("<{other}>"), &ids[0]);
        }
        let line = line.as_str();
        let ids = self
            .ids
            .get(kind.as_str())
            .unwrap_or_else(|| panic!("no <{kind}> printed before: {line}"));
        let chosen: Vec<&String> = if comment(line).contains("once per") {
            ids.iter().collect()
        } else {
            vec![&ids[0]]
        };
        chosen
            .into_iter()
            .map(|id| line.replace(&format!("<{kind}>"), id))
            .collect()
    }
}

#[test]
fn the_readme_walk_throughs_run_as_written() {
    let (enroll_port, scep_port) = (mamori_e2e::free_port(), mamori_e2e::free_port());
    let http01_port = mamori_e2e::free_port();
    let server = Server::start(
        Backend::Sqlite,
        &[
            ("MAMORI_ENROLL_ADDR", &format!("127.0.0.1:{enroll_port}")),
            ("MAMORI_SCEP_HTTP_ADDR", &format!("127.0.0.1:{scep_port}")),
            ("MAMORI_ACME_HTTP01_PORT", &http01_port.to_string()),
        ],
    );
    let certbot = mamori_e2e::have("certbot");
    let api_port = server.api_url.rsplit(':').next().unwrap().to_string();
    let public_port = server.public_url.rsplit(':').next().unwrap().to_string();
    let root = tempfile::tempdir().unwrap();
    let (work, home) = (root.path().join("repo"), root.path().join("home"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::symlink(server.dir.path(), work.join("mamori-dev")).unwrap();

    let mut bash = std::process::Command::new("bash");
    bash.args(["--norc", "--noprofile", "--noediting", "-i"])
        .current_dir(&work)
        .env("HOME", &home)
        .env("TERM", "dumb")
        .env("PS1", "<<rc=$?>>\n")
        .env_remove("MAMORI_SERVER")
        .env_remove("MAMORI_PUBLIC_URL")
        .env_remove("MAMORI_CA_FILE")
        .env_remove("MAMORI_CLI_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("PROMPT_COMMAND");
    let mut shell = rexpect::session::spawn_with_options(
        bash,
        Options {
            timeout_ms: Some(180_000),
            strip_ansi_escape_codes: true,
        },
    )
    .unwrap();
    // Interactive bash ignores SIGTERM: end it with SIGKILL when the test is over.
    shell.process_mut().set_kill_timeout(Some(2_000));
    let ready = Regex::new(r"<<rc=(\d+)>>").unwrap();
    let prompts = Regex::new(PROMPTS).unwrap();
    let exit_comment = Regex::new(r"#\s*exit (\d+):").unwrap();
    shell.exp_regex(r"<<rc=\d+>>").unwrap();

    let mut walk = Walk {
        server: &server,
        people: HashMap::new(),
        logged_in: HashMap::new(),
        halves: HashMap::new(),
        ids: HashMap::new(),
        log: Vec::new(),
    };
    for person in [&server.admin, &server.officer] {
        let copy = Person::new(
            &person.username,
            &person.password,
            person_secret(&server, &person.username),
        );
        walk.people.insert(person.username.clone(), copy);
    }

    let lines = walkthrough_lines();
    assert!(
        lines.len() > 40,
        "the walk-through has its commands: {lines:?}"
    );
    let mut ran = 0;
    for line in &lines {
        if line.contains("certbot") && !certbot {
            eprintln!("skipped (certbot is not installed; Debian package certbot): {line}");
            continue;
        }
        let line = if line.starts_with("cargo build") {
            format!("alias ca-cli={}", binary("ca-cli").display())
        } else {
            line.replace("127.0.0.1:8443", &format!("127.0.0.1:{api_port}"))
                .replace("127.0.0.1:8080", &format!("127.0.0.1:{public_port}"))
                .replace("127.0.0.1:8444", &format!("127.0.0.1:{enroll_port}"))
                .replace("127.0.0.1:8081", &format!("127.0.0.1:{scep_port}"))
                .replace(
                    "--http-01-port 8402",
                    &format!("--http-01-port {http01_port}"),
                )
        };
        let expected: i32 = exit_comment
            .captures(comment(&line))
            .map(|c| c[1].parse().unwrap())
            .unwrap_or(0);
        for typed in walk.expand(&line) {
            let started = std::time::Instant::now();
            shell.send_line(&typed).unwrap();
            let mut output = String::new();
            let code = loop {
                let (before, found) = shell
                    .exp_any(vec![
                        ReadUntil::Regex(prompts.clone()),
                        ReadUntil::Regex(ready.clone()),
                    ])
                    .unwrap_or_else(|e| panic!("{typed}: {e}\n{output}"));
                output.push_str(&before);
                if let Some(c) = ready.captures(&found) {
                    break c[1].parse::<i32>().unwrap();
                }
                output.push_str(&found);
                let answer = walk.answer(&typed, &found);
                shell.send_line(&answer).unwrap();
            };
            eprintln!("{:>6.1}s  {typed}", started.elapsed().as_secs_f64());
            assert_eq!(code, expected, "`{typed}` exited {code}:\n{output}");
            walk.learn(&typed, &output);
            walk.log.push((typed, output, code));
            ran += 1;
        }
    }
    assert!(ran >= lines.len());
    check_outcomes(&walk);
}

fn person_secret(server: &Server, name: &str) -> TotpSecret {
    let file = server.dir.path().join(format!("dev-{name}.json"));
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    TotpSecret::from_base32(value["totp_secret"].as_str().unwrap()).unwrap()
}

/// The output of the first command run that contains `needle` (and, with `nth`, the nth one).
fn output_of<'w>(walk: &'w Walk, needle: &str, nth: usize) -> &'w str {
    walk.log
        .iter()
        .filter(|(line, _, _)| line.contains(needle))
        .nth(nth)
        .map(|(_, out, _)| out.as_str())
        .unwrap_or_else(|| panic!("no command like {needle}"))
}

/// What the story should have left behind, read from what the commands printed and from the
/// server.
fn check_outcomes(walk: &Walk) {
    let ocsp = output_of(walk, "ocsp check acme-chain.pem", 0);
    assert!(ocsp.contains("good"), "{ocsp}");
    let again = output_of(walk, "device import fleet.csv", 1);
    assert!(again.contains("skipped"), "{again}");
    let held = output_of(walk, "ocsp check fleet-keys/0001.pem", 0);
    assert!(held.contains("certificateHold"), "{held}");
    let revoked = output_of(walk, "ocsp check fleet-keys/0001.pem", 1);
    assert!(revoked.contains("keyCompromise"), "{revoked}");
    let show = output_of(walk, "request show", 0);
    assert!(
        show.contains("WO-2026-1123") && show.contains("acme-engineer-1"),
        "{show}"
    );
    let audit = output_of(walk, "audit list --action certificate.revoke", 0);
    assert!(audit.contains("certificate.revoke"), "{audit}");
    let verify = output_of(walk, "audit verify --checkpoints", 0);
    assert!(!verify.is_empty());
    if walk
        .log
        .iter()
        .any(|(typed, _, _)| typed.starts_with("certbot renew"))
    {
        let renewed = walk.server.query(
            "SELECT count(*) FROM certificates WHERE profile_id = 'tls-server' AND status = 'valid'",
        );
        assert_eq!(renewed.trim(), "2", "certbot obtained and renewed");
    }
    let p12 = walk
        .server
        .query("SELECT count(*) FROM certificates WHERE profile_id = 'staff' AND status = 'valid'");
    assert_eq!(p12.trim(), "1");
}
