//! Mamori's PKI engine.
//!
//! Given keys, certificate profiles and requests, `ca-core` produces certificates, CRLs and OCSP
//! responses that RFC 5280 / RFC 6960 clients accept, and decides whether an issuance request has
//! collected the approvals its profile demands.
//!
//! What it does not do: no network, no database, no files, no environment, no async runtime. Time
//! comes in through [`clock::Clock`], keys through [`signer::SigningKey`], and every byte string an
//! attacker could send is parsed into a verified type before anything acts on it.

pub mod approval;
pub mod audit;
pub mod ca;
pub mod clock;
pub mod crl;
pub mod csr;
pub mod duration;
pub mod error;
pub mod extensions;
pub mod issuance;
pub mod jws;
pub mod key;
pub mod lint;
pub mod name;
pub mod ocsp;
pub mod profile;
pub mod public_key;
pub mod quorum;
pub mod random;
pub mod review;
pub mod role;
pub mod scep;
pub mod serial;
pub mod signature_memo;
pub mod signer;
pub mod text;
pub mod time;
pub mod tlv;
pub mod totp;

pub use der;
pub use spki;
pub use x509_cert;
pub use x509_ocsp;
