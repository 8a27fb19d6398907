//! Output: readable tables for people, JSON for scripts (`--json`). Every text that came from
//! the server goes through [`shown`] before a table or message prints it: user names, subjects
//! and comments are someone else's input, and control or bidi characters in them must not
//! reach the terminal (`ca_core::text::escape`).

use serde_json::Value;

/// Writes one line to standard output (the `out!` macro); a reader that went away ends the
/// program with exit 0, as it would end `cat` or `ls`, instead of a panic.
pub fn write_line(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"));
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// Text from the server made safe to print: control and bidi characters escaped.
pub fn shown(text: &str) -> String {
    ca_core::text::escape(text)
}

/// A time from the server (RFC 3339, UTC) in the local time zone (`TZ`, else the system's), as
/// people read it in a table: `2026-12-01 20:03:15 +09:00`. Anything else is [`shown`] as is.
pub fn local_time(text: &str) -> String {
    let looks_like_time = text.len() >= 20
        && text.as_bytes()[4] == b'-'
        && text.as_bytes()[10] == b'T'
        && text.bytes().take(4).all(|b| b.is_ascii_digit());
    if !looks_like_time {
        return shown(text);
    }
    match text.parse::<jiff::Timestamp>() {
        Ok(at) => at
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
        Err(_) => shown(text),
    }
}

/// Texts from the server, [`shown`] and joined with commas; `-` for none.
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "-".into();
    }
    items
        .iter()
        .map(|i| shown(i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An optional text from the server, [`shown`] (`default` when absent).
pub fn field(value: Option<&str>, default: &str) -> String {
    shown(value.unwrap_or(default))
}

/// Prints an API answer (a `ca_api` view or a list of them) as JSON, or as a table of `columns`
/// (field name, header), one row per item.
pub fn print<T: serde::Serialize>(json: bool, value: &T, columns: &[(&str, &str)]) {
    match serde_json::to_value(value) {
        Ok(value) => print_value(json, &value, columns),
        Err(e) => out!("(cannot show the answer: {e})"),
    }
}

/// [`print`] for a JSON value.
pub fn print_value(json: bool, value: &Value, columns: &[(&str, &str)]) {
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
        return;
    }
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    if rows.is_empty() {
        out!("(none)");
        return;
    }
    let cell = |row: &Value, key: &str| -> String {
        shown(&match row.get(key) {
            None | Some(Value::Null) => "-".into(),
            Some(Value::String(s)) => local_time(s),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            Some(other) => other.to_string(),
        })
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|(key, header)| {
            rows.iter()
                .map(|r| cell(r, key).chars().count())
                .max()
                .unwrap_or(0)
                .max(header.len())
        })
        .collect();
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out!("{}", parts.join("  ").trim_end());
    };
    line(columns.iter().map(|(_, h)| h.to_string()).collect());
    for row in rows {
        line(columns.iter().map(|(k, _)| cell(row, k)).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_tables_are_local() {
        // jiff reads TZ for the system zone; set only in this test process's own check.
        let at = "2026-12-01T11:03:15Z".parse::<jiff::Timestamp>().unwrap();
        let tokyo = at
            .to_zoned(jiff::tz::TimeZone::get("Asia/Tokyo").unwrap())
            .strftime("%Y-%m-%d %H:%M:%S %:z")
            .to_string();
        assert_eq!(tokyo, "2026-12-01 20:03:15 +09:00");
        let shown_now = local_time("2026-12-01T11:03:15Z");
        assert!(shown_now.starts_with("2026-12-01 "), "{shown_now}");
        assert_ne!(shown_now, "2026-12-01T11:03:15Z");
        assert_eq!(local_time("EMP-0042"), "EMP-0042");
        assert_eq!(local_time("2026-12-01Tnot a time"), "2026-12-01Tnot a time");
    }
}
