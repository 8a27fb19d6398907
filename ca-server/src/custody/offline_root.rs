//! The online side of an offline root. `ca-server init --issuing-csr DIR` makes the issuing
//! CA's key (and a key for the root's delegated OCSP responder) and writes their requests for
//! the ceremony; `ca-server init --import-issuing DIR` takes the ceremony's output — the root
//! certificate, the issuing CA and responder certificates, the root CRL — checks every
//! signature against the root and the keys against the requests, and initializes the database
//! with no root key at all (`cas.key_pem` = [`OFFLINE`]). Later ceremonies' CRLs and responder
//! certificates go in with `ca-server ceremony-import DIR`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use ca_core::ca::{self, CertificateAuthority};
use ca_core::clock::{Clock, SystemClock};
use ca_core::key::SoftwareKey;
use ca_core::name::{build_name, AttributeKind};
use ca_core::random::OsRandom;
use ca_core::serial::serial_hex;
use ca_core::signer::SigningKey;
use der::{Decode, Encode};
use diesel::prelude::*;
use serde_json::json;

use super::gate::GatedKey;
use super::keys::Custody;
use crate::config::Config;
use crate::secrets::DataKey;
use crate::store::audit_log;
use crate::store::crl_rows::CrlRows;
use crate::store::models::{CaRow, CertificateRow, PublishedCrlRow, ResponderRow};
use crate::store::ocsp_rows::OcspRows;
use crate::store::request_rows::RequestRows;
use crate::store::schema::{cas, certificates, settings};
use crate::store::settings::{put_setting, setting};
use crate::store::status::CertificateStatus;
use crate::store::DbConnection;

/// What `cas.key_pem` holds for a root whose key never comes online.
pub const OFFLINE: &str = "offline-root";

const PENDING_ISSUING: &str = "offline_pending_issuing_key";
const PENDING_RESPONDER: &str = "offline_pending_responder_key";
const ROOT_ID: &str = super::ceremony::ROOT_ID;
const ISSUING_ID: &str = "issuing";

fn responder_subject(config: &Config) -> anyhow::Result<x509_cert::name::Name> {
    build_name(&[
        (AttributeKind::O, config.hierarchy.organization.clone()),
        (AttributeKind::CN, "Mamori OCSP Responder (root)".into()),
    ])
    .map_err(anyhow::Error::msg)
}

/// `ca-server init --issuing-csr DIR`: the keys and the two requests for the ceremony.
pub fn request(
    config: &Config,
    conn: &mut DbConnection,
    passphrase: &str,
    dir: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    if setting(conn, "kdf_salt")?.is_some() {
        bail!("this database is already initialized; nothing was changed");
    }
    let salt = crate::secrets::random_bytes(16)?;
    let (data_key, responder_key) = DataKey::derive_with_responder_key(passphrase, &salt)?;
    let check = data_key.seal(b"mamori")?;
    let custody = Custody::new(config.pkcs11.clone());
    let (issuing_key, issuing_ref): (Arc<dyn SigningKey>, String) = if custody.has_token() {
        let label = format!("mamori-{ISSUING_ID}-{}", SystemClock.now().as_secs());
        let key = custody.generate(&label, config.hierarchy.key_algorithm)?;
        let uri = key.uri().to_string();
        (Arc::new(key), uri)
    } else {
        let (key, pem) = SoftwareKey::generate_encrypted(
            config.hierarchy.key_algorithm,
            passphrase.as_bytes(),
            &OsRandom,
        )?;
        (Arc::new(key), pem)
    };
    let (responder, pkcs8) =
        SoftwareKey::generate(ca_core::key::KeyAlgorithm::EcdsaP256, &OsRandom)?;
    let subject = build_name(&[
        (AttributeKind::C, config.hierarchy.country.clone()),
        (AttributeKind::O, config.hierarchy.organization.clone()),
        (AttributeKind::CN, config.hierarchy.issuing_name.clone()),
    ])
    .map_err(anyhow::Error::msg)?;
    let issuing_csr = ca::issuing_ca_csr(&subject, &*issuing_key)?;
    let responder_csr = ca_core::csr::build_csr(&responder_subject(config)?, vec![], &responder)?;
    crate::store::write_transaction::<_, anyhow::Error, _>(conn, |conn| {
        put_setting(conn, "kdf_salt", &hex::encode(&salt))?;
        put_setting(conn, "key_check", &hex::encode(&check))?;
        put_setting(conn, PENDING_ISSUING, &issuing_ref)?;
        put_setting(conn, PENDING_RESPONDER, &responder_key.seal_text(&pkcs8)?)?;
        Ok(())
    })?;
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, der) in [
        ("issuing.csr", issuing_csr),
        ("root-ocsp.csr", responder_csr),
    ] {
        let pem = der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, &der)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let path = dir.join(name);
        std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn certificates_in(dir: &Path, prefix: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut found = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".pem"))
        })
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        let (_, der) = der::pem::decode_vec(text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        found.push(der);
    }
    Ok(found)
}

fn verify_under(
    root: &x509_cert::Certificate,
    tbs: &[u8],
    alg: &x509_cert::spki::AlgorithmIdentifierOwned,
    sig: &[u8],
) -> anyhow::Result<()> {
    let key = &root.tbs_certificate.subject_public_key_info;
    let kind = ca_core::public_key::classify(key, 2048).map_err(|e| anyhow::anyhow!("{e}"))?;
    ca_core::public_key::verify(key, kind, alg, tbs, sig)
        .map_err(|_| anyhow::anyhow!("a signature does not verify under the root"))
}

/// A ceremony's root CRL, checked: signed by the root, with its number and dates.
struct RootCrl {
    der: Vec<u8>,
    number: i64,
    this_update: i64,
    next_update: i64,
    /// (serial hex, revocation time, reason name) of every entry.
    revoked: Vec<(String, i64, &'static str)>,
}

fn root_crl(dir: &Path, root: &x509_cert::Certificate) -> anyhow::Result<RootCrl> {
    let der = std::fs::read(dir.join("root.crl")).context("the ceremony's root.crl")?;
    let crl = x509_cert::crl::CertificateList::from_der(&der).context("root.crl")?;
    verify_under(
        root,
        &crl.tbs_cert_list.to_der()?,
        &crl.signature_algorithm,
        crl.signature.as_bytes().unwrap_or_default(),
    )
    .context("root.crl")?;
    let number = crl
        .tbs_cert_list
        .crl_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_NUMBER)
        .and_then(|e| der::asn1::UintRef::from_der(e.extn_value.as_bytes()).ok())
        .map(|n| {
            n.as_bytes()
                .iter()
                .fold(0i64, |acc, b| (acc << 8) | i64::from(*b))
        })
        .context("root.crl has no cRLNumber")?;
    let next_update = crl
        .tbs_cert_list
        .next_update
        .context("root.crl has no nextUpdate")?
        .to_unix_duration()
        .as_secs() as i64;
    let mut revoked = Vec::new();
    for entry in crl.tbs_cert_list.revoked_certificates.iter().flatten() {
        let reason = entry
            .crl_entry_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_REASONS)
            .and_then(|e| x509_cert::ext::pkix::CrlReason::from_der(e.extn_value.as_bytes()).ok())
            .map(ca_core::crl::RevocationReason::from_crl_reason)
            .unwrap_or(ca_core::crl::RevocationReason::Unspecified);
        revoked.push((
            serial_hex(&entry.serial_number),
            entry.revocation_date.to_unix_duration().as_secs() as i64,
            reason.as_str(),
        ));
    }
    Ok(RootCrl {
        revoked,
        number,
        this_update: crl.tbs_cert_list.this_update.to_unix_duration().as_secs() as i64,
        next_update,
        der,
    })
}

fn certificate_row(
    ca_id: &str,
    der: &[u8],
    profile: &str,
    now: i64,
) -> anyhow::Result<CertificateRow> {
    let cert = x509_cert::Certificate::from_der(der)?;
    let tbs = cert.tbs_certificate;
    Ok(CertificateRow {
        ca_id: ca_id.into(),
        serial: serial_hex(&tbs.serial_number),
        request_id: None,
        profile_id: profile.into(),
        subject: tbs.subject.to_string(),
        tbs_der: tbs.to_der()?,
        der: Some(der.to_vec()),
        not_before: tbs.validity.not_before.to_unix_duration().as_secs() as i64,
        not_after: tbs.validity.not_after.to_unix_duration().as_secs() as i64,
        status: CertificateStatus::Valid.as_str().into(),
        revoked_at: None,
        revocation_reason: None,
        invalidity_date: None,
        created_at: now,
        status_changed_ms: 0,
        crl_partition: None,
    })
}

/// The responder certificate in `dir` for `key` (its public key), checked under the root.
fn responder_certificate(
    dir: &Path,
    root: &x509_cert::Certificate,
    key: &x509_cert::spki::SubjectPublicKeyInfoOwned,
) -> anyhow::Result<Option<Vec<u8>>> {
    for der in certificates_in(dir, "root-ocsp-")? {
        let cert = x509_cert::Certificate::from_der(&der)?;
        if &cert.tbs_certificate.subject_public_key_info != key {
            continue;
        }
        verify_under(
            root,
            &cert.tbs_certificate.to_der()?,
            &cert.signature_algorithm,
            cert.signature.as_bytes().unwrap_or_default(),
        )
        .context("the root OCSP responder certificate")?;
        return Ok(Some(der));
    }
    Ok(None)
}

/// `ca-server init --import-issuing DIR`: initializes the database from the ceremony's output
/// and the keys `--issuing-csr` made. Returns the issuing CA and the root (keyless) so that
/// init can issue the API certificate.
pub fn import(
    config: &Config,
    conn: &mut DbConnection,
    passphrase: &str,
    dir: &Path,
) -> anyhow::Result<(CertificateAuthority, CertificateAuthority)> {
    let (_, responder_key) = crate::store::settings::unlock_with_responder_key(conn, passphrase)?;
    let issuing_ref = setting(conn, PENDING_ISSUING)?
        .context("no pending issuing key: run ca-server init --issuing-csr first")?;
    let sealed_responder = setting(conn, PENDING_RESPONDER)?
        .context("no pending responder key: run ca-server init --issuing-csr first")?;
    let existing: i64 = cas::table.count().get_result(conn)?;
    if existing > 0 {
        bail!("this database already has its CAs; use ca-server ceremony-import for a new CRL or responder certificate");
    }
    let root_pem = std::fs::read_to_string(dir.join("root-ca.pem")).context("root-ca.pem")?;
    let (_, root_der) = der::pem::decode_vec(root_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("root-ca.pem: {e}"))?;
    let root_cert = x509_cert::Certificate::from_der(&root_der)?;
    let public = Some(config.public_base());
    let root = CertificateAuthority::new(
        ROOT_ID,
        &root_der,
        Arc::new(
            GatedKey::new(root_cert.tbs_certificate.subject_public_key_info.clone())
                .map_err(anyhow::Error::msg)?,
        ),
        public.clone(),
    )?;
    let custody = Custody::new(config.pkcs11.clone());
    let issuing_key = custody.load(&issuing_ref, passphrase)?;
    let issuing_der = certificates_in(dir, "issuing-")?
        .into_iter()
        .find(|der| {
            x509_cert::Certificate::from_der(der).is_ok_and(|c| {
                &c.tbs_certificate.subject_public_key_info == issuing_key.public_key_info()
            })
        })
        .context("no issuing-*.pem in the ceremony's output holds this server's issuing key")?;
    let issuing = ca::import_issuing(ISSUING_ID, &issuing_der, issuing_key, &root_der, public)?
        .with_delta_crls(config.delta_crls)
        .with_crl_partitions(config.crl_partitions);
    let pkcs8 = responder_key
        .open_text(&sealed_responder)
        .context("the pending responder key is damaged")??;
    let responder = SoftwareKey::from_pkcs8_der(&pkcs8)?;
    let responder_der = responder_certificate(dir, &root_cert, responder.public_key_info())?
        .context("no root-ocsp-*.pem in the ceremony's output holds this server's responder key")?;
    let crl = root_crl(dir, &root_cert)?;
    let now = SystemClock.now().as_secs() as i64;
    crate::store::write_transaction::<_, anyhow::Error, _>(conn, |conn| {
        for (id, der, key_pem, parent) in [
            (ROOT_ID, root_der.clone(), OFFLINE.to_string(), None),
            (
                ISSUING_ID,
                issuing_der.clone(),
                issuing_ref.clone(),
                Some(ROOT_ID.to_string()),
            ),
        ] {
            diesel::insert_into(cas::table)
                .values(CaRow {
                    id: id.into(),
                    parent_id: parent,
                    certificate_der: der,
                    key_pem,
                    created_at: now,
                })
                .execute(conn)?;
        }
        for (der, profile) in [
            (&issuing_der, "issuing-ca"),
            (&responder_der, "ocsp-responder"),
        ] {
            diesel::insert_into(certificates::table)
                .values(certificate_row(ROOT_ID, der, profile, now)?)
                .execute(conn)?;
        }
        store_responder(conn, &responder_der, sealed_responder.clone())?;
        store_crl(conn, &crl)?;
        diesel::delete(
            settings::table.filter(settings::name.eq_any([PENDING_ISSUING, PENDING_RESPONDER])),
        )
        .execute(conn)?;
        audit_log::append(
            conn,
            now as u64,
            "system",
            "ca.init",
            ROOT_ID,
            json!({"root": root.subject().to_string(), "issuing": issuing.subject().to_string(),
                   "offline_root": true, "root_crl_number": crl.number, "public_url": config.public_base()}),
        )?;
        Ok(())
    })?;
    Ok((issuing, root))
}

fn store_responder(conn: &mut DbConnection, der: &[u8], key_pem: String) -> anyhow::Result<()> {
    let cert = x509_cert::Certificate::from_der(der)?;
    conn.replace_responder(ResponderRow {
        ca_id: ROOT_ID.into(),
        certificate_der: der.to_vec(),
        key_pem,
        not_after: cert
            .tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs() as i64,
    })?;
    Ok(())
}

fn store_crl(conn: &mut DbConnection, crl: &RootCrl) -> anyhow::Result<()> {
    // What the ceremony revoked, the root's online responder must answer revoked too.
    for (serial, at, reason) in &crl.revoked {
        let current: Option<String> = certificates::table
            .find((ROOT_ID, serial))
            .select(certificates::status)
            .first(conn)
            .optional()?;
        if current.is_some_and(|s| s != CertificateStatus::Revoked.as_str()) {
            conn.set_certificate_status(
                ROOT_ID,
                serial,
                &crate::store::request_rows::StatusWrite {
                    status: CertificateStatus::Revoked,
                    reason: Some(reason),
                    revoked_at: Some(*at),
                    invalidity_date: None,
                    changed_ms: crate::store::now_ms(),
                },
            )?;
        }
    }
    conn.store_crl(
        &PublishedCrlRow {
            name: ROOT_ID.into(),
            ca_id: ROOT_ID.into(),
            crl_partition: None,
            base_number: None,
            crl_number: crl.number,
            this_update: crl.this_update,
            next_update: crl.next_update,
            der_len: crl.der.len() as i64,
            delta_base_number: None,
            delta_base_this_update: None,
        },
        &crl.der,
    )?;
    Ok(())
}

/// `ca-server ceremony-import DIR`: a later ceremony's root CRL (only a higher cRLNumber) and
/// a renewed certificate for the root's responder key. Returns what changed.
pub fn update(conn: &mut DbConnection, dir: &Path) -> anyhow::Result<Vec<String>> {
    let root: CaRow = cas::table
        .find(ROOT_ID)
        .select(CaRow::as_select())
        .first(conn)
        .optional()?
        .context("this database has no root")?;
    if root.key_pem != OFFLINE {
        bail!("this server's root is not offline");
    }
    let root_cert = x509_cert::Certificate::from_der(&root.certificate_der)?;
    let now = SystemClock.now().as_secs() as i64;
    let mut changed = Vec::new();
    let crl = root_crl(dir, &root_cert)?;
    let current = conn
        .published_header(ROOT_ID)?
        .map(|h| h.number)
        .unwrap_or(0);
    let stored = conn
        .responder(ROOT_ID)?
        .context("this server has no root OCSP responder")?;
    let stored_cert = x509_cert::Certificate::from_der(&stored.certificate_der)?;
    let renewed = responder_certificate(
        dir,
        &root_cert,
        &stored_cert.tbs_certificate.subject_public_key_info,
    )?
    .filter(|der| *der != stored.certificate_der);
    crate::store::write_transaction::<_, anyhow::Error, _>(conn, |conn| {
        if crl.number > current {
            store_crl(conn, &crl)?;
            changed.push(format!("root CRL {} (was {current})", crl.number));
        }
        if let Some(der) = &renewed {
            store_responder(conn, der, stored.key_pem.clone())?;
            diesel::insert_into(certificates::table)
                .values(certificate_row(ROOT_ID, der, "ocsp-responder", now)?)
                .execute(conn)?;
            changed.push("root OCSP responder certificate".into());
        }
        audit_log::append(
            conn,
            now as u64,
            "ca-server (local)",
            "ceremony.import",
            ROOT_ID,
            json!({"changed": changed}),
        )?;
        Ok(())
    })?;
    Ok(changed)
}
