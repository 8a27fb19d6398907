//! RFC 7512 `pkcs11:` URIs naming a key in a token, as stored in `cas.key_pem`: the path
//! attributes `token`, `object` and `id` (percent-encoded), nothing else.

/// The prefix that tells a token key from an encrypted PKCS#8 key.
pub const SCHEME: &str = "pkcs11:";

/// A key in a token: the token's label, the key's label and its `CKA_ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUri {
    /// The token's label.
    pub token: String,
    /// The key objects' `CKA_LABEL`.
    pub object: String,
    /// The key objects' `CKA_ID`.
    pub id: Vec<u8>,
}

/// A `pkcs11:` URI Mamori cannot use.
#[derive(Debug, thiserror::Error)]
#[error("bad pkcs11 URI: {0}")]
pub struct UriError(String);

impl KeyUri {
    /// Parses `pkcs11:token=...;object=...;id=...` (attributes in any order, all three
    /// required, percent-encoding as RFC 7512 §2.3).
    pub fn parse(text: &str) -> Result<KeyUri, UriError> {
        let path = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| UriError("it does not start with pkcs11:".into()))?;
        let path = path.split('?').next().unwrap_or_default();
        let (mut token, mut object, mut id) = (None, None, None);
        for part in path.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| UriError(format!("{part:?} has no '='")))?;
            let value = decode(value)?;
            match name {
                "token" => token = Some(String::from_utf8(value).map_err(|_| utf8(name))?),
                "object" => object = Some(String::from_utf8(value).map_err(|_| utf8(name))?),
                "id" => id = Some(value),
                _ => {}
            }
        }
        Ok(KeyUri {
            token: token.ok_or_else(|| UriError("token= is missing".into()))?,
            object: object.ok_or_else(|| UriError("object= is missing".into()))?,
            id: id.ok_or_else(|| UriError("id= is missing".into()))?,
        })
    }
}

impl std::fmt::Display for KeyUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{SCHEME}token={};object={};id={}",
            encode(self.token.as_bytes(), false),
            encode(self.object.as_bytes(), false),
            encode(&self.id, true)
        )
    }
}

fn utf8(name: &str) -> UriError {
    UriError(format!("{name}= is not UTF-8"))
}

/// Percent-encodes everything outside RFC 3986's unreserved set (every byte when `all`).
fn encode(bytes: &[u8], all: bool) -> String {
    let mut out = String::new();
    for &b in bytes {
        if !all && (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

fn decode(text: &str) -> Result<Vec<u8>, UriError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .ok_or_else(|| UriError("a % without two hex digits".into()))?;
            out.push(
                u8::from_str_radix(hex, 16).map_err(|_| UriError(format!("%{hex} is not hex")))?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_uri_round_trips_and_bad_ones_are_refused() {
        let uri = KeyUri {
            token: "Mamori HSM".into(),
            object: "mamori-issuing".into(),
            id: vec![0x01, 0xab],
        };
        let text = uri.to_string();
        assert_eq!(
            text,
            "pkcs11:token=Mamori%20HSM;object=mamori-issuing;id=%01%ab"
        );
        assert_eq!(KeyUri::parse(&text).unwrap(), uri);
        // RFC 7512's own example shape, attributes reordered, with a query.
        let parsed =
            KeyUri::parse("pkcs11:id=%02;object=k;token=The%20Token?pin-source=file:/x").unwrap();
        assert_eq!(parsed.token, "The Token");
        for bad in [
            "-----BEGIN",
            "pkcs11:token=a;object=b",
            "pkcs11:token=a;object=b;id=%zz",
            "pkcs11:token=a;object=b;id=%0",
        ] {
            assert!(KeyUri::parse(bad).is_err(), "{bad}");
        }
    }
}
