//! Local keys, so a private key never leaves the machine that uses it: `key generate`, and
//! loading and checking keys for `csr create` and `pkcs12 export`. All through OpenSSL.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use openssl::pkey::{PKey, Private};

use crate::client::{exit, fail, read_secret_file, CliResult};

/// Key algorithms `key generate` makes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Algorithm {
    /// ECDSA P-256 (default).
    P256,
    /// ECDSA P-384.
    P384,
    /// RSA 3072.
    Rsa3072,
}

/// `ca-cli key generate`.
#[derive(Args)]
#[command(after_help = "Example:\n  ca-cli key generate --out engineer.key")]
pub struct Generate {
    /// Where to write the PKCS#8 PEM key (mode 0600).
    #[arg(long)]
    pub out: PathBuf,
    /// Algorithm.
    #[arg(long, value_enum, default_value = "p256")]
    pub algorithm: Algorithm,
    /// Encrypt the key with the passphrase in this file (AES-256-CBC, PKCS#8).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

/// Writes a file readable by its owner only, refusing to overwrite.
pub fn write_new_private(path: &Path, data: &[u8]) -> CliResult<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    file.write_all(data)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Generates a key pair.
pub fn generate_key(algorithm: Algorithm) -> CliResult<PKey<Private>> {
    Ok(match algorithm {
        Algorithm::P256 | Algorithm::P384 => {
            let nid = if matches!(algorithm, Algorithm::P256) {
                openssl::nid::Nid::X9_62_PRIME256V1
            } else {
                openssl::nid::Nid::SECP384R1
            };
            let group = openssl::ec::EcGroup::from_curve_name(nid)?;
            PKey::from_ec_key(openssl::ec::EcKey::generate(&group)?)?
        }
        Algorithm::Rsa3072 => PKey::from_rsa(openssl::rsa::Rsa::generate(3072)?)?,
    })
}

/// PKCS#8 PEM, encrypted when a passphrase is given.
pub fn key_pem(key: &PKey<Private>, passphrase: Option<&str>) -> CliResult<Vec<u8>> {
    Ok(match passphrase {
        Some(p) => key.private_key_to_pem_pkcs8_passphrase(
            openssl::symm::Cipher::aes_256_cbc(),
            p.as_bytes(),
        )?,
        None => key.private_key_to_pem_pkcs8()?,
    })
}

/// Runs `key generate`.
pub fn generate(args: Generate) -> CliResult<()> {
    let passphrase = args
        .passphrase_file
        .as_deref()
        .map(read_secret_file)
        .transpose()?;
    let key = generate_key(args.algorithm)?;
    write_new_private(
        &args.out,
        &key_pem(&key, passphrase.as_deref().map(|s| s.as_str()))?,
    )?;
    out!("wrote {}", args.out.display());
    Ok(())
}

/// Loads a PEM private key, decrypting it with the passphrase file when given.
pub fn load_key(path: &Path, passphrase_file: Option<&Path>) -> CliResult<PKey<Private>> {
    let pem = zeroize::Zeroizing::new(
        std::fs::read(path).with_context(|| format!("reading key {}", path.display()))?,
    );
    let key = match passphrase_file {
        Some(p) => {
            let pass = read_secret_file(p)?;
            PKey::private_key_from_pem_passphrase(&pem, pass.as_bytes())
        }
        None => PKey::private_key_from_pem(&pem),
    };
    let key = key.map_err(|_| {
        fail(
            exit::ERROR,
            format!(
                "reading key {}: not a PEM private key, or wrong passphrase",
                path.display()
            ),
        )
    })?;
    check_key_type(&key).map_err(|why| {
        fail(
            exit::ERROR,
            format!("reading key {}: {why}", path.display()),
        )
    })?;
    Ok(key)
}

/// The keys Mamori certifies (`ca_core::public_key::classify`: RSA of at least
/// [`ca_core::public_key::MIN_RSA_BITS`] with an odd exponent of at least 65537, ECDSA P-256 and
/// P-384, Ed25519); refusing others here saves a round trip to a server that would refuse the CSR.
pub(crate) fn check_key_type(key: &PKey<Private>) -> Result<(), String> {
    use ca_core::der::Decode;
    let der = key.public_key_to_der().map_err(|e| e.to_string())?;
    let spki = ca_core::spki::SubjectPublicKeyInfoOwned::from_der(&der)
        .map_err(|e| format!("the public key does not parse: {e}"))?;
    ca_core::public_key::classify(&spki, ca_core::public_key::MIN_RSA_BITS)
        .map(|_| ())
        .map_err(|e| {
            format!("{e}: use an RSA (2048 bits or more), ECDSA P-256/P-384 or Ed25519 key")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_policy_is_ca_cores() {
        for algorithm in [Algorithm::P256, Algorithm::P384] {
            assert!(check_key_type(&generate_key(algorithm).unwrap()).is_ok());
        }
        let small = PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
        let why = check_key_type(&small).unwrap_err();
        assert!(why.contains("1024 bits is too weak"), "{why}");
        let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SECP256K1).unwrap();
        let k1 = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
        assert!(check_key_type(&k1)
            .unwrap_err()
            .contains("unsupported elliptic curve"));
        let ed = PKey::generate_ed25519().unwrap();
        assert!(check_key_type(&ed).is_ok());
    }
}
