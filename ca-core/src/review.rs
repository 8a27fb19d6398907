//! What an approver sees of a request: the CSR decoded (subject, SANs, key) and what a reviewer
//! must notice in it. Officers approved blind before: a vendor certificate for
//! `O=<the hospital group>, CN=Security Officer`, for `CN=аdmin` with a Cyrillic а, and with
//! `email:director@hospital.example` from a vendor.
//!
//! Flags found here, from the CSR alone (the server adds those that need its data, such as a
//! name matching an existing account):
//! - `mixed-scripts`: one value mixes writing systems that lookalike attacks combine (Latin with
//!   Cyrillic or Greek, ...); Latin with Japanese (kanji, kana) is ordinary and not flagged;
//! - `looks-latin`: a value written wholly in Cyrillic or Greek letters that look like Latin ones;
//! - `fullwidth`: fullwidth Latin letters or digits, which render like ASCII;
//! - `control-characters`: control, bidi or zero-width characters;
//! - `outside-group-domain`: an e-mail or DNS name outside the group's domains;
//! - `group-organization`: an O equal to the hospital group's own organization, in a profile
//!   that is not the group's staff's.

use crate::csr::VerifiedCsr;
use crate::name::{attribute_text, name_attributes, AttributeKind};
use crate::public_key::PublicKeyKind;
use crate::text::has_unsafe;

/// One thing a reviewer must notice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReviewFlag {
    /// Stable code (`mixed-scripts`, `looks-latin`, ...).
    pub code: String,
    /// The field it concerns (`CN`, `O`, `email`, `dns`, ...).
    pub field: String,
    /// What was found, in words.
    pub detail: String,
}

/// A CSR as a reviewer reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CsrSummary {
    /// The subject, RFC 4514.
    pub subject: String,
    /// Each subject attribute as (short name, value), in order.
    pub attributes: Vec<(String, String)>,
    /// Each requested SAN as `type:value` (`dns:`, `email:`, `uri:`, `ip:`).
    pub sans: Vec<String>,
    /// The key: `ECDSA P-256`, `RSA 3072`, ...
    pub key: String,
    /// What to notice.
    pub flags: Vec<ReviewFlag>,
}

/// What the review compares against.
#[derive(Debug, Clone, Default)]
pub struct ReviewContext<'a> {
    /// The group's own domains (e-mail and DNS names outside them are flagged).
    pub group_domains: &'a [String],
    /// The hospital group's organization name (`[hierarchy] organization`).
    pub group_organization: &'a str,
    /// Whether the profile is for the group's own people or services (then O may be the group).
    pub group_profile: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Script {
    Latin,
    Japanese,
    Greek,
    Cyrillic,
    Armenian,
    Hebrew,
    Arabic,
    Hangul,
    FullwidthLatin,
    Other,
}

fn script(c: char) -> Option<Script> {
    let u = c as u32;
    Some(match u {
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F | 0x1E00..=0x1EFF => {
            if u == 0xD7 || u == 0xF7 {
                return None;
            }
            Script::Latin
        }
        0x370..=0x3FF | 0x1F00..=0x1FFF => Script::Greek,
        0x400..=0x52F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => Script::Cyrillic,
        0x530..=0x58F => Script::Armenian,
        0x590..=0x5FF => Script::Hebrew,
        0x600..=0x6FF | 0x750..=0x77F => Script::Arabic,
        0x3040..=0x30FF
        | 0x31F0..=0x31FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0xFF66..=0xFF9F => Script::Japanese,
        0xAC00..=0xD7AF | 0x1100..=0x11FF => Script::Hangul,
        0xFF10..=0xFF19 | 0xFF21..=0xFF3A | 0xFF41..=0xFF5A => Script::FullwidthLatin,
        _ if c.is_alphabetic() => Script::Other,
        _ => return None,
    })
}

/// Cyrillic and Greek letters that look like Latin ones (after Unicode's confusables list),
/// each with the Latin letter it passes for.
const LOOKALIKES: [(char, char); 47] = [
    ('а', 'a'),
    ('е', 'e'),
    ('о', 'o'),
    ('р', 'p'),
    ('с', 'c'),
    ('у', 'y'),
    ('х', 'x'),
    ('і', 'i'),
    ('ј', 'j'),
    ('ѕ', 's'),
    ('ԁ', 'd'),
    ('ԛ', 'q'),
    ('ԝ', 'w'),
    ('ӏ', 'l'),
    ('в', 'b'),
    ('к', 'k'),
    ('м', 'm'),
    ('н', 'h'),
    ('т', 't'),
    ('А', 'A'),
    ('В', 'B'),
    ('Е', 'E'),
    ('К', 'K'),
    ('М', 'M'),
    ('Н', 'H'),
    ('О', 'O'),
    ('Р', 'P'),
    ('С', 'C'),
    ('Т', 'T'),
    ('Х', 'X'),
    ('І', 'I'),
    ('Ј', 'J'),
    ('Ѕ', 'S'),
    ('ο', 'o'),
    ('α', 'a'),
    ('ν', 'v'),
    ('ρ', 'p'),
    ('τ', 't'),
    ('υ', 'u'),
    ('ι', 'i'),
    ('κ', 'k'),
    ('Α', 'A'),
    ('Β', 'B'),
    ('Ε', 'E'),
    ('Ζ', 'Z'),
    ('Η', 'H'),
    ('Ι', 'I'),
];

fn looks_latin(c: char) -> bool {
    LOOKALIKES.iter().any(|(l, _)| *l == c) || "ΚΜΝΟΡΤΥΧ".contains(c)
}

/// A name reduced to what it looks like: lookalike letters replaced by the Latin ones they pass
/// for, fullwidth forms by ASCII, lower case, letters and digits only. `аdmin`, `ADMIN` and
/// `ａｄｍｉｎ` all become `admin`; `Security Officer` and `security-officer` both
/// `securityofficer`.
pub fn skeleton(text: &str) -> String {
    text.chars()
        .map(|c| {
            if let Some((_, latin)) = LOOKALIKES.iter().find(|(l, _)| *l == c) {
                return *latin;
            }
            let u = c as u32;
            if (0xFF01..=0xFF5E).contains(&u) {
                return char::from_u32(u - 0xFEE0).unwrap_or(c);
            }
            c
        })
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// The flags of one value (`field` names it in the flags).
pub fn value_flags(field: &str, value: &str) -> Vec<ReviewFlag> {
    let mut flags = Vec::new();
    let flag = |code: &str, detail: String| ReviewFlag {
        code: code.into(),
        field: field.into(),
        detail,
    };
    if has_unsafe(value) {
        flags.push(flag(
            "control-characters",
            format!("{field} holds control, bidi or zero-width characters"),
        ));
    }
    let mut scripts: Vec<Script> = value.chars().filter_map(script).collect();
    scripts.sort();
    scripts.dedup();
    if scripts.contains(&Script::FullwidthLatin) {
        flags.push(flag(
            "fullwidth",
            format!("{field} has fullwidth letters or digits that look like ASCII"),
        ));
    }
    let distinct: Vec<Script> = scripts
        .iter()
        .copied()
        .filter(|s| *s != Script::FullwidthLatin)
        .collect();
    let ordinary = distinct.len() <= 1 || distinct == [Script::Latin, Script::Japanese];
    if !ordinary {
        flags.push(flag(
            "mixed-scripts",
            format!("{field} mixes writing systems ({distinct:?}): a lookalike of another name?"),
        ));
    }
    let letters: Vec<char> = value.chars().filter(|c| c.is_alphabetic()).collect();
    if !letters.is_empty()
        && letters.iter().all(|c| looks_latin(*c))
        && matches!(distinct.as_slice(), [Script::Greek] | [Script::Cyrillic])
    {
        flags.push(flag(
            "looks-latin",
            format!("{field} is written in letters that look Latin but are not"),
        ));
    }
    flags
}

fn in_domains(domain: &str, domains: &[String]) -> bool {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    domains.iter().any(|d| {
        let d = d.trim_start_matches('.').to_ascii_lowercase();
        domain == d || domain.ends_with(&format!(".{d}"))
    })
}

fn key_text(kind: PublicKeyKind) -> String {
    match kind {
        PublicKeyKind::Rsa { bits } => format!("RSA {bits}"),
        PublicKeyKind::EcdsaP256 => "ECDSA P-256".into(),
        PublicKeyKind::EcdsaP384 => "ECDSA P-384".into(),
        PublicKeyKind::Ed25519 => "Ed25519".into(),
    }
}

/// The CSR decoded for a reviewer, with every flag found from the CSR alone.
pub fn summarize(csr: &VerifiedCsr, context: &ReviewContext<'_>) -> CsrSummary {
    let mut flags = Vec::new();
    let mut attributes = Vec::new();
    for atv in name_attributes(csr.subject()) {
        let kind = AttributeKind::from_oid(&atv.oid);
        let field = kind
            .map(|k| k.as_str().to_string())
            .unwrap_or_else(|| atv.oid.to_string());
        let value = attribute_text(&atv.value).unwrap_or_else(|| "(not text)".into());
        flags.extend(value_flags(&field, &value));
        if kind == Some(AttributeKind::O)
            && !context.group_profile
            && !context.group_organization.is_empty()
            && value
                .trim()
                .eq_ignore_ascii_case(context.group_organization.trim())
        {
            flags.push(ReviewFlag {
                code: "group-organization".into(),
                field: field.clone(),
                detail: format!(
                    "O is the hospital group's own organization ({value}) in a profile for outsiders"
                ),
            });
        }
        attributes.push((field, value));
    }
    let mut sans = Vec::new();
    for san in csr.requested_sans() {
        let (field, value) = crate::name::general_name_text(san);
        flags.extend(value_flags(field, &value));
        let domain = match field {
            "email" => value.rsplit_once('@').map(|(_, d)| d.to_string()),
            "dns" => Some(value.clone()),
            _ => None,
        };
        if let Some(domain) = domain {
            if !context.group_domains.is_empty() && !in_domains(&domain, context.group_domains) {
                flags.push(ReviewFlag {
                    code: "outside-group-domain".into(),
                    field: field.into(),
                    detail: format!(
                        "{value} is outside the group's domains ({})",
                        context.group_domains.join(", ")
                    ),
                });
            }
        }
        sans.push(format!("{field}:{value}"));
    }
    CsrSummary {
        subject: csr.subject().to_string(),
        attributes,
        sans,
        key: key_text(csr.key_kind()),
        flags,
    }
}

/// An issued certificate's subjectAltNames (`type:value`, as [`CsrSummary::sans`]) and key (as
/// [`CsrSummary::key`]), for showing a certificate; `None` when the DER does not parse.
pub fn certificate_names_and_key(der: &[u8]) -> Option<(Vec<String>, String)> {
    use der::Decode;
    let certificate = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = &certificate.tbs_certificate;
    let sans = crate::name::subject_alt_names(tbs)?;
    let key = crate::public_key::classify(&tbs.subject_public_key_info, 0)
        .map(key_text)
        .unwrap_or_else(|_| "(unsupported key)".into());
    Some((sans, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_certificate_shows_its_names_and_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["gw.hospital.example".to_string()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI(
            "urn:mamori:device:ambulance:7".try_into().unwrap(),
        ));
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let (sans, key) = certificate_names_and_key(&der).unwrap();
        assert_eq!(
            sans,
            [
                "dns:gw.hospital.example",
                "uri:urn:mamori:device:ambulance:7"
            ]
        );
        assert_eq!(key, "ECDSA P-256");
        assert!(certificate_names_and_key(b"not a certificate").is_none());
    }

    fn codes(field: &str, value: &str) -> Vec<String> {
        value_flags(field, value)
            .into_iter()
            .map(|f| f.code)
            .collect()
    }

    #[test]
    fn lookalikes_are_flagged_and_japanese_names_are_not() {
        assert_eq!(codes("CN", "\u{430}dmin"), ["mixed-scripts"]);
        assert_eq!(codes("CN", "\u{441}\u{43e}\u{440}\u{435}"), ["looks-latin"]);
        assert_eq!(codes("CN", "ａdmin"), ["fullwidth"]);
        assert_eq!(codes("CN", "adm\u{200B}in"), ["control-characters"]);
        assert!(codes("CN", "山田 花子").is_empty());
        assert!(codes("CN", "山田 Hanako ヤマダ").is_empty());
        assert!(
            codes("CN", "Ελένη").is_empty(),
            "a Greek name alone is fine"
        );
        assert!(codes("O", "Acme Medical K.K.").is_empty());
        assert!(codes("CN", "Müller-Lüdenscheidt").is_empty());
    }

    #[test]
    fn skeletons_unmask_lookalikes() {
        assert_eq!(skeleton("\u{430}dmin"), "admin");
        assert_eq!(skeleton("ａｄｍｉｎ"), "admin");
        assert_eq!(skeleton("Security Officer"), skeleton("security-officer"));
        assert_eq!(skeleton("山田 花子"), "山田花子");
    }

    #[test]
    fn domains_match_on_label_boundaries() {
        let group = vec!["hospital.example".to_string()];
        assert!(in_domains("hospital.example", &group));
        assert!(in_domains("ward3.HOSPITAL.example.", &group));
        assert!(!in_domains("evilhospital.example", &group));
        assert!(!in_domains("vendor.example", &group));
    }
}
