//! Walking DER without decoding it: split one tag-length-value off a slice, and write a header.
//! Used where Mamori re-assembles its own signed structures (CRL entries, OCSP responses) byte
//! for byte instead of decoding and re-encoding them.

use der::{Decode, Encode, Header, Reader, Tag};

/// Why a DER walk stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed DER: {0}")]
pub struct TlvError(pub String);

/// One DER tag-length-value split off the front of a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Its tag.
    pub tag: Tag,
    /// Its content octets.
    pub content: &'a [u8],
    /// The whole TLV, header included.
    pub whole: &'a [u8],
    /// What follows it.
    pub rest: &'a [u8],
}

/// Splits one DER TLV off `input`.
pub fn split(input: &[u8]) -> Result<Tlv<'_>, TlvError> {
    let parse = |e: der::Error| TlvError(e.to_string());
    let mut reader = der::SliceReader::new(input).map_err(parse)?;
    let header = Header::decode(&mut reader).map_err(parse)?;
    let start = usize::try_from(reader.position()).map_err(parse)?;
    let len = usize::try_from(header.length).map_err(parse)?;
    let end = start
        .checked_add(len)
        .filter(|end| *end <= input.len())
        .ok_or_else(|| TlvError("length runs past the end".into()))?;
    Ok(Tlv {
        tag: header.tag,
        content: &input[start..end],
        whole: &input[..end],
        rest: &input[end..],
    })
}

/// Splits one TLV off `input` and checks its tag.
pub fn expect(input: &[u8], wanted: Tag) -> Result<Tlv<'_>, TlvError> {
    let tlv = split(input)?;
    if tlv.tag != wanted {
        return Err(TlvError(format!("expected {wanted}, found {}", tlv.tag)));
    }
    Ok(tlv)
}

/// Appends the DER header of a `tag` with `len` content octets.
pub fn push_header(out: &mut Vec<u8>, tag: Tag, len: usize) -> Result<(), TlvError> {
    Header::new(tag, len)
        .and_then(|h| h.encode_to_vec(out))
        .map(|_| ())
        .map_err(|e| TlvError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_refuses_overruns() {
        let tlv = split(&[0x02, 0x01, 0x05, 0xff]).unwrap();
        assert_eq!(tlv.tag, Tag::Integer);
        assert_eq!(tlv.content, &[5u8][..]);
        assert_eq!(tlv.whole, &[2u8, 1, 5][..]);
        assert_eq!(tlv.rest, &[0xffu8][..]);
        assert!(split(&[0x30, 0x05, 0x00]).is_err());
        assert!(split(&[]).is_err());
        assert!(expect(&[0x02, 0x00], Tag::Sequence).is_err());
        let mut out = Vec::new();
        push_header(&mut out, Tag::Sequence, 300).unwrap();
        assert_eq!(out, vec![0x30, 0x82, 0x01, 0x2c]);
    }
}
