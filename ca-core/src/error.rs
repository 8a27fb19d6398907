//! Typed errors, one enum per area. Each variant says what went wrong in words a security officer
//! can act on; fields name the offending value or profile field.

use const_oid::ObjectIdentifier;
use thiserror::Error;

/// A time that cannot be encoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeError {
    /// The instant is outside what X.509 can express.
    #[error("time is out of the range X.509 can encode")]
    OutOfRange,
}

/// A duration string such as `8h` that cannot be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurationError {
    /// No unit after the number.
    #[error("duration {0:?} has no unit (use s, m, h or d)")]
    MissingUnit(String),
    /// A unit other than s, m, h, d.
    #[error("duration {0:?} has an unknown unit (use s, m, h or d)")]
    UnknownUnit(String),
    /// The number is missing or too large.
    #[error("duration {0:?} is not a whole number of units")]
    BadNumber(String),
}

/// Key generation, encryption at rest, or loading failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The key bytes are not a key of the expected kind.
    #[error("private key rejected: {0}")]
    Rejected(String),
    /// Encrypting the private key failed.
    #[error("encrypting the private key failed: {0}")]
    Encrypt(String),
    /// Wrong passphrase, or the encrypted key is damaged.
    #[error("cannot decrypt the private key: wrong passphrase or damaged file")]
    Decrypt,
    /// A passphrase that is too short to protect a CA key.
    #[error("passphrase too short: at least {min} characters are required")]
    WeakPassphrase {
        /// The minimum length.
        min: usize,
    },
    /// The key's algorithm is not one Mamori signs with.
    #[error("unsupported private key algorithm {0}")]
    Unsupported(ObjectIdentifier),
}

/// A signature could not be made.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// The signing backend (software key or HSM) failed.
    #[error("signing failed in the key backend")]
    Backend,
}

/// A public key that Mamori refuses to certify.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicKeyError {
    /// The key's algorithm is not RSA, ECDSA P-256/P-384 or Ed25519.
    #[error("unsupported public key algorithm {0}")]
    UnsupportedAlgorithm(ObjectIdentifier),
    /// An EC key on a curve other than P-256 or P-384.
    #[error("unsupported elliptic curve {0}")]
    UnsupportedCurve(String),
    /// An RSA key shorter than the minimum.
    #[error("RSA key of {bits} bits is too weak: at least {min} bits are required")]
    RsaTooSmall {
        /// The key's modulus length.
        bits: usize,
        /// The minimum accepted.
        min: usize,
    },
    /// An RSA key longer than 8192 bits.
    #[error("RSA key of {bits} bits is larger than the 8192 bits supported")]
    RsaTooLarge {
        /// The key's modulus length.
        bits: usize,
    },
    /// An RSA public exponent that is even, 1, or below 65537.
    #[error("RSA public exponent is weak (must be odd and at least 65537)")]
    RsaBadExponent,
    /// The key bytes do not parse.
    #[error("public key is malformed")]
    Malformed,
}

/// A certificate signing request that is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CsrError {
    /// Not PEM with a CERTIFICATE REQUEST block, nor DER.
    #[error("CSR is neither PEM (CERTIFICATE REQUEST) nor DER")]
    NotPemOrDer,
    /// The DER structure is malformed.
    #[error("CSR is not valid DER PKCS#10: {0}")]
    Der(String),
    /// The CSR is larger than any sane request.
    #[error("CSR is too large ({size} bytes, at most {max})")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The CSR's version is not v1 (0).
    #[error("CSR version must be v1")]
    Version,
    /// The signature algorithm is not one Mamori verifies.
    #[error("CSR signature algorithm {0} is not supported")]
    UnsupportedSignatureAlgorithm(ObjectIdentifier),
    /// Proof of possession failed.
    #[error("CSR signature does not verify (no proof of possession)")]
    BadSignature,
    /// The public key is refused.
    #[error("CSR public key: {0}")]
    PublicKey(#[from] PublicKeyError),
    /// The key type is not allowed by the profile.
    #[error("key type {key} is not allowed by profile {profile}")]
    KeyTypeNotAllowed {
        /// The CSR's key type.
        key: String,
        /// The profile.
        profile: String,
    },
    /// A subject attribute the profile requires is missing.
    #[error("subject attribute {attribute} is required by the profile")]
    SubjectAttributeMissing {
        /// Attribute short name (CN, O, ...).
        attribute: String,
    },
    /// A subject attribute the profile does not allow.
    #[error("subject attribute {attribute} is not allowed by the profile")]
    SubjectAttributeNotAllowed {
        /// Attribute short name or OID.
        attribute: String,
    },
    /// A subject attribute appears more than once.
    #[error("subject attribute {attribute} appears more than once")]
    SubjectAttributeRepeated {
        /// Attribute short name.
        attribute: String,
    },
    /// A subject attribute value the profile's pattern refuses.
    #[error("subject attribute {attribute} value {value:?} does not match the profile")]
    SubjectAttributeValue {
        /// Attribute short name.
        attribute: String,
        /// The refused value.
        value: String,
    },
    /// A subject attribute that is not a readable string.
    #[error("subject attribute {attribute} is not a UTF8String, PrintableString or IA5String")]
    SubjectAttributeEncoding {
        /// Attribute short name.
        attribute: String,
    },
    /// A SAN type the profile does not allow at all.
    #[error("subject alternative name of type {kind} is not allowed by the profile")]
    SanTypeNotAllowed {
        /// dns, uri, email, ip or other.
        kind: String,
    },
    /// A SAN type the profile requires is missing.
    #[error("a subject alternative name of type {kind} is required by the profile")]
    SanMissing {
        /// dns, uri, email or ip.
        kind: String,
    },
    /// Too many SANs of one type.
    #[error("{count} subject alternative names of type {kind}; the profile allows at most {max}")]
    SanTooMany {
        /// dns, uri, email or ip.
        kind: String,
        /// How many were requested.
        count: usize,
        /// The profile's limit.
        max: usize,
    },
    /// A SAN value the profile refuses.
    #[error("subject alternative name {kind}:{value:?} is refused: {reason}")]
    SanValue {
        /// dns, uri, email or ip.
        kind: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// The extensionRequest attribute is malformed.
    #[error("CSR extension request is malformed")]
    ExtensionRequest,
}

/// A profile that fails to load.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProfileError {
    /// The TOML does not parse, or has unknown or missing fields.
    #[error("{file}: {message}")]
    Parse {
        /// Which file.
        file: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field whose value is invalid.
    #[error("{file}: field `{field}`: {reason}")]
    Invalid {
        /// Which file.
        file: String,
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// One failed pre-issuance check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintFinding {
    /// The check's name, e.g. `e_validity_exceeds_issuer`.
    pub check: &'static str,
    /// The rule it enforces (RFC section or profile field).
    pub rule: &'static str,
    /// What was found.
    pub message: String,
}

/// The to-be-signed certificate failed pre-issuance lint; nothing was signed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("pre-issuance lint failed: {}", findings.iter().map(|f| format!("{} ({}): {}", f.check, f.rule, f.message)).collect::<Vec<_>>().join("; "))]
pub struct LintFailure {
    /// Every failed check.
    pub findings: Vec<LintFinding>,
}

/// An issuance that cannot go ahead.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueError {
    /// The CSR is refused.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// The profile names another issuing CA.
    #[error("profile {profile} issues from CA {expected}, not {actual}")]
    WrongIssuer {
        /// The profile.
        profile: String,
        /// What it names.
        expected: String,
        /// What was passed.
        actual: String,
    },
    /// The requested validity is refused.
    #[error("validity refused: {0}")]
    Validity(String),
    /// The certificate would outlive its issuer.
    #[error("the certificate would end at {not_after}, after the issuing CA's own end {issuer_not_after}")]
    OutlivesIssuer {
        /// Requested end.
        not_after: String,
        /// Issuer's end.
        issuer_not_after: String,
    },
    /// Pre-issuance lint failed.
    #[error(transparent)]
    Lint(#[from] LintFailure),
    /// The signing key failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// A time that cannot be encoded.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// DER encoding failed.
    #[error("encoding the certificate failed: {0}")]
    Encode(String),
}

/// Creating or importing a CA failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaError {
    /// A subject name that cannot be parsed.
    #[error("invalid CA subject name {0:?}")]
    Subject(String),
    /// The validity is impossible.
    #[error("CA validity refused: {0}")]
    Validity(String),
    /// The certificate to import does not hold the expected key.
    #[error("the certificate's public key does not match the CA key")]
    KeyMismatch,
    /// The certificate to import is not a CA certificate.
    #[error("the certificate is not a CA certificate: {0}")]
    NotACa(String),
    /// The certificate's signature does not verify under the named parent.
    #[error("the certificate is not signed by the given parent CA")]
    BadSignature,
    /// The signing key failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Time out of range.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// Pre-issuance lint failed.
    #[error(transparent)]
    Lint(#[from] LintFailure),
    /// DER encoding or decoding failed.
    #[error("DER: {0}")]
    Der(String),
}

/// Building a CRL failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrlError {
    /// nextUpdate must follow thisUpdate.
    #[error("nextUpdate must be after thisUpdate")]
    Window,
    /// A CRL given as the base of the next one could not be read.
    #[error("malformed base CRL: {0}")]
    Parse(String),
    /// A serial number that cannot be encoded.
    #[error("invalid serial number in revocation entry")]
    Serial,
    /// The signing key failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Time out of range.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// DER encoding failed.
    #[error("encoding the CRL failed: {0}")]
    Encode(String),
    /// The pre-signing lint refused the tbsCertList.
    #[error(transparent)]
    Lint(LintFailure),
    /// The entries written did not add up to the length announced for them (the revoked set
    /// changed between counting and writing).
    #[error("CRL entries changed while the CRL was built: {written} octets written, {expected} expected")]
    EntriesChanged {
        /// Octets announced.
        expected: usize,
        /// Octets written.
        written: usize,
    },
}

/// An OCSP request that cannot be answered; maps to an OCSPResponseStatus.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OcspRequestError {
    /// Not a DER OCSPRequest (→ malformedRequest).
    #[error("OCSP request is not valid DER: {0}")]
    Malformed(String),
    /// An empty requestList (→ malformedRequest).
    #[error("OCSP request lists no certificate")]
    Empty,
    /// More CertIDs than the responder answers in one response (→ malformedRequest).
    #[error("OCSP request lists {count} certificates; at most {max} are answered")]
    TooMany {
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A nonce outside RFC 9654's 1..=128 octets (→ malformedRequest).
    #[error("OCSP nonce of {0} octets is outside 1..=128")]
    NonceLength(usize),
    /// A CertID hash algorithm other than SHA-1 or SHA-256 (→ malformedRequest).
    #[error("CertID hash algorithm {0} is not supported")]
    UnsupportedHash(ObjectIdentifier),
    /// A CertID for an issuer this responder does not serve (→ unauthorized).
    #[error("OCSP request names an issuer this responder does not serve")]
    UnknownIssuer,
}

/// Building an OCSP response failed (→ internalError).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OcspError {
    /// The signing key failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Time out of range.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// DER encoding failed.
    #[error("encoding the OCSP response failed: {0}")]
    Encode(String),
    /// The pre-signing lint refused the tbsResponseData.
    #[error(transparent)]
    Lint(LintFailure),
}

/// A decision that the approval rules refuse to record.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApprovalError {
    /// Requesters never approve their own request.
    #[error("requesters cannot decide on their own request")]
    SelfApproval,
    /// Each approver counts once.
    #[error("this approver has already decided on the request")]
    AlreadyDecided,
    /// The approver holds none of the roles the profile names.
    #[error("approving requires one of the roles: {0}")]
    RoleNotAllowed(String),
    /// The profile demands a fresh second factor with each decision.
    #[error("a fresh second-factor code is required with each decision")]
    SecondFactorRequired,
    /// The request is no longer pending.
    #[error("the request is no longer pending ({0})")]
    NotPending(String),
}
