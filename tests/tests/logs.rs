//! The server's log as an operator's file or collector receives it: plain text without terminal
//! colour codes when standard error is not a terminal, JSON lines with `MAMORI_LOG_FORMAT=json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mamori_e2e::{Backend, Server};

#[test]
fn a_log_file_gets_plain_text_or_json_lines() {
    let server = Server::start(Backend::Sqlite, &[("MAMORI_LOG", "info")]);
    // A refused login is logged too; the harness writes standard error to a file.
    server.call("GET", "/api/v1/me", Some("not-a-token"), None);
    let text = server.logs();
    assert!(text.lines().count() >= 3, "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a log file: {text:?}"
    );
    drop(server);

    let server = Server::start(
        Backend::Sqlite,
        &[("MAMORI_LOG", "info"), ("MAMORI_LOG_FORMAT", "json")],
    );
    let text = server.logs();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{text}");
    for line in lines {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{entry}"
        );
    }
}
