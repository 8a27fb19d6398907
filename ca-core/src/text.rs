//! Text from outside (user names typed at a failed login, subjects in CSRs, comments) made safe
//! to show a person: in a terminal, a log line or a table. Control characters could clear a
//! screen, forge a table row or hide what follows; bidirectional overrides could reverse what a
//! reviewer reads; both are shown as `\u{XXXX}` instead. Stored data stays as it came.

/// Whether `c` must not reach a terminal or a log as it is: C0 and C1 controls, DEL, the
/// bidirectional embeddings, overrides and isolates, the directional marks, and the invisible
/// characters that make two names look alike (zero-width space, joiners, BOM).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `text` with every [`is_unsafe`] character written as `\u{XXXX}` (and a backslash as `\\`,
/// so that an escape cannot be forged).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:04X}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// [`escape`] of at most `max_chars` characters of `text`, with `…` when it was cut.
pub fn escape_untrusted(text: &str, max_chars: usize) -> String {
    let mut cut: String = text.chars().take(max_chars).collect();
    if cut.len() < text.len() {
        cut = escape(&cut);
        cut.push('…');
        cut
    } else {
        escape(&cut)
    }
}

/// Whether `text` holds [`is_unsafe`] characters (a reviewer should be told).
pub fn has_unsafe(text: &str) -> bool {
    text.chars().any(is_unsafe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_and_bidi_overrides_come_out_escaped() {
        let attack = "\u{1b}[2J\u{1b}[HAUDIT OK - no events\u{1b}[8m";
        let shown = escape(attack);
        assert!(!shown.chars().any(is_unsafe), "{shown}");
        assert_eq!(
            shown,
            "\\u{001B}[2J\\u{001B}[HAUDIT OK - no events\\u{001B}[8m"
        );
        assert_eq!(escape("a\nb\tc"), "a\\u{000A}b\\u{0009}c");
        assert_eq!(escape("admin\u{202E}txt.exe"), "admin\\u{202E}txt.exe");
        assert_eq!(escape("zero\u{200B}width"), "zero\\u{200B}width");
        assert_eq!(escape("\u{85}"), "\\u{0085}");
        assert_eq!(
            escape("C:\\u{1B}"),
            "C:\\\\u{1B}",
            "a typed escape stays visible as typed"
        );
        assert_eq!(escape("山田 花子 аdmin"), "山田 花子 аdmin");
        assert!(has_unsafe("x\u{7f}") && !has_unsafe("plain"));
    }

    #[test]
    fn untrusted_text_is_cut_after_escaping_rules() {
        assert_eq!(escape_untrusted("abcdef", 3), "abc…");
        assert_eq!(escape_untrusted("ab", 3), "ab");
        assert_eq!(escape_untrusted("\u{1b}bc", 2), "\\u{001B}b…");
    }
}
