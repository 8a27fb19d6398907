//! Bringing a Mamori instance up: `init` (CA hierarchy, keys encrypted at rest, the API's TLS
//! certificate), `open` (decrypt, load profiles, assemble the authority) and `dev` (all of it in
//! a local folder for a newcomer, with an admin whose credentials are printed once).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use ca_core::ca::{self, CaSpec, CertificateAuthority, NameConstraintSpec};
use ca_core::clock::{Clock, SystemClock};
use ca_core::csr::{build_csr, VerifiedCsr};
use ca_core::issuance::{IssuanceOptions, PreparedIssuance};
use ca_core::key::{encrypt_pkcs8, SoftwareKey};
use ca_core::name::{build_name, AttributeKind};
use ca_core::profile::Profile;
use ca_core::random::{OsRandom, RandomSource};
use ca_core::role::Role;
use ca_core::serial::serial_hex;
use diesel::prelude::*;
use serde_json::json;
use x509_cert::ext::pkix::name::GeneralName;
use zeroize::Zeroizing;

use crate::accounts::policy::AccountPolicy;
use crate::config::Config;
use crate::ra::{Authority, Parts};
use crate::secrets::{random_bytes, DataKey};
use crate::store::audit_log;
use crate::store::models::*;
use crate::store::schema::*;
use crate::store::settings::{put_setting, setting, unlock};
use crate::store::status::CertificateStatus;
use crate::store::{self, DbConnection, DbPool};

/// The root CA's id.
pub const ROOT_ID: &str = "root";
/// The issuing CA's id (profiles name it in `issuing_ca`).
pub const ISSUING_ID: &str = "issuing";

/// Creates the data folder with owner-only permissions.
pub fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data folder {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all().ok();
    Ok(())
}

/// Opens the database named by the configuration.
pub fn open_pool(config: &Config) -> anyhow::Result<DbPool> {
    if config.database_url.is_none() {
        ensure_data_dir(&config.data_dir)?;
    }
    Ok(store::open(&config.database_url(), 8)?)
}

/// Whether `init` has run against this database.
pub fn is_initialized(pool: &DbPool) -> anyhow::Result<bool> {
    let mut conn = pool.get()?;
    Ok(setting(&mut conn, "kdf_salt")?.is_some())
}

fn api_profile(config: &Config) -> anyhow::Result<Profile> {
    let dns: Vec<String> = config
        .api_tls_names
        .iter()
        .filter(|n| n.parse::<IpAddr>().is_err())
        .map(|n| regex_escape(n))
        .collect();
    let has_ip = config
        .api_tls_names
        .iter()
        .any(|n| n.parse::<IpAddr>().is_ok());
    if dns.is_empty() && !has_ip {
        bail!("api_tls_names must name at least one DNS name or IP address");
    }
    let text = format!(
        r#"id = "api-server"
description = "Mamori's own API listener (internal)"
issuing_ca = "{ISSUING_ID}"
key_types = ["ecdsa-p256"]
key_usage = ["digital-signature"]
extended_key_usage = ["server-auth"]
[validity]
default = "398d"
max = "398d"
[[subject.attributes]]
type = "CN"
pattern = "{dns_pattern}"
[san.dns]
required = {dns_required}
max = 20
pattern = "{dns_pattern}"
[san.ip]
required = {ip_required}
max = 20
[approval]
approvals = 0
max_wait = "1h"
[renewal]
allowed = true
"#,
        dns_pattern = if dns.is_empty() {
            "localhost".to_string()
        } else {
            dns.join("|")
        }
        .replace('\\', "\\\\"),
        dns_required = !dns.is_empty(),
        ip_required = dns.is_empty(),
    );
    Profile::from_toml("internal:api-server", &text).context("building the API server profile")
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// Issues the API listener's TLS certificate from the issuing CA; stores it and its encrypted key.
fn issue_api_certificate(
    config: &Config,
    conn: &mut DbConnection,
    issuing: &CertificateAuthority,
    root: &CertificateAuthority,
    passphrase: &str,
    random: &dyn RandomSource,
) -> anyhow::Result<()> {
    let profile = api_profile(config)?;
    let (key, pkcs8) = SoftwareKey::generate(ca_core::key::KeyAlgorithm::EcdsaP256, random)?;
    let mut sans = Vec::new();
    for name in &config.api_tls_names {
        match name.parse::<IpAddr>() {
            Ok(ip) => sans.push(GeneralName::from(ip)),
            Err(_) => sans.push(GeneralName::DnsName(
                der::asn1::Ia5String::new(name).context("API TLS name")?,
            )),
        }
    }
    let first_dns = config
        .api_tls_names
        .iter()
        .find(|n| n.parse::<IpAddr>().is_err());
    let subject = match first_dns {
        Some(name) => {
            build_name(&[(AttributeKind::CN, name.clone())]).map_err(anyhow::Error::msg)?
        }
        None => x509_cert::name::Name::default(),
    };
    let csr = VerifiedCsr::parse(&build_csr(&subject, sans, &key)?, 2048)?;
    let prepared = PreparedIssuance::prepare(
        issuing,
        &profile,
        &csr,
        &IssuanceOptions::default(),
        &SystemClock,
        random,
    )?;
    let now = SystemClock.now().as_secs() as i64;
    let (issued, serial) =
        crate::ca::reservation::reserve_and_sign(conn, issuing, prepared, "api-server", None, now)?;
    let chain = format!(
        "{}{}{}",
        issued.pem(),
        issuing.certificate_pem(),
        root.certificate_pem()
    );
    let key_pem = encrypt_pkcs8(&pkcs8, passphrase.as_bytes(), random)?;
    crate::store::write_transaction::<_, anyhow::Error, _>(&mut *conn, |conn| {
        crate::ca::reservation::mark_issued(conn, issuing.id(), &serial, &issued.der)?;
        diesel::delete(
            settings::table.filter(settings::name.eq_any(["api_tls_cert", "api_tls_key"])),
        )
        .execute(conn)?;
        put_setting(conn, "api_tls_cert", &chain)?;
        put_setting(conn, "api_tls_key", &key_pem)?;
        audit_log::append(
            conn,
            now as u64,
            "system",
            "certificate.issue",
            &format!("{}/{serial}", issuing.id()),
            json!({"profile": "api-server", "purpose": "API TLS listener"}),
        )?;
        Ok(())
    })?;
    Ok(())
}

/// Creates the CA hierarchy and everything encrypted under the passphrase, drawing keys and
/// serials from `random`. Refuses to run twice.
pub fn init(config: &Config, passphrase: &str, random: &dyn RandomSource) -> anyhow::Result<()> {
    let pool = open_pool(config)?;
    if is_initialized(&pool)? {
        bail!("this database is already initialized; nothing was changed");
    }
    let mut conn = pool.get()?;
    let salt = random_bytes(16)?;
    let data_key = DataKey::derive(passphrase, &salt)?;
    let check = data_key.seal(b"mamori")?;
    let h = &config.hierarchy;
    let public = Some(config.public_base());
    let (root_key, root_pem) =
        SoftwareKey::generate_encrypted(h.key_algorithm, passphrase.as_bytes(), random)?;
    let root_subject = build_name(&[
        (AttributeKind::C, h.country.clone()),
        (AttributeKind::O, h.organization.clone()),
        (AttributeKind::CN, h.root_name.clone()),
    ])
    .map_err(|e| anyhow::anyhow!("hierarchy subject: {e}"))?;
    let root = ca::create_root(
        &CaSpec {
            id: ROOT_ID.into(),
            subject: root_subject,
            validity_secs: ca::DEFAULT_ROOT_VALIDITY_SECS,
            path_len: Some(1),
            name_constraints: None,
        },
        Arc::new(root_key),
        public.clone(),
        &SystemClock,
        random,
    )?;
    // With a [pkcs11] table the issuing CA's key is made inside the token and only its URI is
    // stored; otherwise it is a PKCS#8 key encrypted under the passphrase.
    let custody = crate::custody::keys::Custody::new(config.pkcs11.clone());
    let (issuing_key, issuing_pem): (Arc<dyn ca_core::signer::SigningKey>, String) =
        if custody.has_token() {
            let label = format!("mamori-{ISSUING_ID}-{}", SystemClock.now().as_secs());
            let key = custody
                .generate(&label, h.key_algorithm)
                .context("generating the issuing CA's key in the PKCS#11 token")?;
            let uri = key.uri().to_string();
            (Arc::new(key), uri)
        } else {
            let (key, pem) =
                SoftwareKey::generate_encrypted(h.key_algorithm, passphrase.as_bytes(), random)?;
            (Arc::new(key), pem)
        };
    let issuing_subject = build_name(&[
        (AttributeKind::C, h.country.clone()),
        (AttributeKind::O, h.organization.clone()),
        (AttributeKind::CN, h.issuing_name.clone()),
    ])
    .map_err(|e| anyhow::anyhow!("hierarchy subject: {e}"))?;
    let constraints = (!h.permitted_dns.is_empty()).then(|| NameConstraintSpec {
        permitted_dns: h.permitted_dns.clone(),
        permitted_email: vec![],
    });
    let issuing = ca::create_issuing(
        &CaSpec {
            id: ISSUING_ID.into(),
            subject: issuing_subject,
            validity_secs: ca::DEFAULT_ISSUING_VALIDITY_SECS,
            path_len: Some(0),
            name_constraints: constraints,
        },
        issuing_key,
        &root,
        public,
        &SystemClock,
        random,
    )?;
    let now = SystemClock.now().as_secs() as i64;
    crate::store::write_transaction::<_, anyhow::Error, _>(&mut conn, |conn| {
        put_setting(conn, "kdf_salt", &hex::encode(&salt))?;
        put_setting(conn, "key_check", &hex::encode(&check))?;
        for (ca, pem, parent) in [
            (&root, &root_pem, None),
            (&issuing, &issuing_pem, Some(ROOT_ID.to_string())),
        ] {
            diesel::insert_into(cas::table)
                .values(CaRow {
                    id: ca.id().into(),
                    parent_id: parent,
                    certificate_der: ca.certificate_der().to_vec(),
                    key_pem: pem.clone(),
                    created_at: now,
                })
                .execute(conn)?;
        }
        let tbs = <x509_cert::Certificate as der::Decode>::from_der(issuing.certificate_der())?
            .tbs_certificate;
        diesel::insert_into(certificates::table)
            .values(CertificateRow {
                ca_id: ROOT_ID.into(),
                serial: serial_hex(&tbs.serial_number),
                request_id: None,
                profile_id: "issuing-ca".into(),
                subject: tbs.subject.to_string(),
                tbs_der: der::Encode::to_der(&tbs)?,
                der: Some(issuing.certificate_der().to_vec()),
                not_before: issuing.not_before().as_secs() as i64,
                not_after: issuing.not_after().as_secs() as i64,
                status: CertificateStatus::Valid.as_str().into(),
                revoked_at: None,
                revocation_reason: None,
                invalidity_date: None,
                created_at: now,
                status_changed_ms: 0,
                crl_partition: None,
            })
            .execute(conn)?;
        audit_log::append(
            conn,
            now as u64,
            "system",
            "ca.init",
            ROOT_ID,
            json!({"root": root.subject().to_string(), "issuing": issuing.subject().to_string(), "public_url": config.public_base()}),
        )?;
        Ok(())
    })?;
    if config.api_tls_cert.is_none() {
        issue_api_certificate(config, &mut conn, &issuing, &root, passphrase, random)?;
    }
    if config.database_url.is_none() || config.data_dir.exists() {
        ensure_data_dir(&config.data_dir)?;
        std::fs::write(config.data_dir.join("root-ca.pem"), root.certificate_pem()).with_context(
            || format!("writing {}", config.data_dir.join("root-ca.pem").display()),
        )?;
    }
    Ok(())
}

/// `init --import-issuing`: the CAs from the ceremony's output (no root key), then the API's
/// certificate and `root-ca.pem` as `init` makes them.
pub fn init_offline_import(config: &Config, passphrase: &str, dir: &Path) -> anyhow::Result<()> {
    let pool = open_pool(config)?;
    let mut conn = pool.get()?;
    let (issuing, root) = crate::custody::offline_root::import(config, &mut conn, passphrase, dir)?;
    if config.api_tls_cert.is_none() {
        issue_api_certificate(config, &mut conn, &issuing, &root, passphrase, &OsRandom)?;
    }
    ensure_data_dir(&config.data_dir)?;
    std::fs::write(config.data_dir.join("root-ca.pem"), root.certificate_pem())
        .with_context(|| format!("writing {}", config.data_dir.join("root-ca.pem").display()))?;
    Ok(())
}

/// Loads every `*.toml` in the policies folder; any bad profile stops start-up with its file,
/// field and reason.
pub fn load_profiles(dir: &Path) -> anyhow::Result<BTreeMap<String, Profile>> {
    let mut profiles = BTreeMap::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading policies folder {}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| {
            p.file_name()
                .is_none_or(|n| n != crate::accounts::policy::FILE_NAME)
        })
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let profile = Profile::from_toml(&path.display().to_string(), &text)?;
        profiles.insert(profile.id().to_string(), profile);
    }
    if !profiles.contains_key("ocsp-responder") {
        bail!("{}: the ocsp-responder profile is required", dir.display());
    }
    Ok(profiles)
}

/// Decrypts the CAs, loads the profiles and assembles the running authority.
pub fn open(config: Config, passphrase: Zeroizing<String>) -> anyhow::Result<Authority> {
    open_with(
        config,
        passphrase,
        Arc::new(SystemClock),
        Arc::new(OsRandom),
    )
}

/// As [`open`], with the clock the services read and the random source they draw serials, keys
/// and TOTP secrets from (tests pass a `ManualClock` and may pass a `SeededRandom`).
pub fn open_with(
    config: Config,
    passphrase: Zeroizing<String>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
) -> anyhow::Result<Authority> {
    let pool = open_pool(&config)?;
    let mut conn = pool.get()?;
    let keys = crate::store::settings::unlock_keys(&mut conn, &passphrase)?;
    let (data_key, responder_key) = (keys.data, keys.responder);
    crate::ocsp::reseal_responder_keys(&mut conn, &passphrase, &responder_key)?;
    let rows: Vec<CaRow> = cas::table.select(CaRow::as_select()).load(&mut conn)?;
    let custody = Arc::new(crate::custody::keys::Custody::new(config.pkcs11.clone()));
    // Under a quorum the software CA keys stay closed: each CA gets an empty slot that
    // `ca-cli activate` fills once k custodians have given their shares.
    let quorum = crate::custody::quorum::load(&mut conn)?;
    // A token whose PIN the quorum sealed opens only at activation: its keys wait too.
    let sealed_pin = crate::custody::quorum::sealed_pin(&mut conn)?;
    let mut gates = Vec::new();
    let mut cas = BTreeMap::new();
    let mut ca_certificates = BTreeMap::new();
    for row in rows {
        ca_certificates.insert(row.id.clone(), row.certificate_der.clone());
        if row.key_pem == crate::custody::offline_root::OFFLINE {
            // An offline root: its certificate is served, its key never comes here.
            continue;
        }
        let key: Arc<dyn ca_core::signer::SigningKey> = match &quorum {
            Some(_)
                if sealed_pin.is_some()
                    || !row.key_pem.starts_with(crate::custody::uri::SCHEME) =>
            {
                let certificate =
                    <x509_cert::Certificate as der::Decode>::from_der(&row.certificate_der)?;
                let gate = Arc::new(
                    crate::custody::gate::GatedKey::new(
                        certificate.tbs_certificate.subject_public_key_info,
                    )
                    .map_err(anyhow::Error::msg)?,
                );
                gates.push((row.id.clone(), row.key_pem.clone(), gate.clone()));
                gate
            }
            _ => custody
                .load(&row.key_pem, &passphrase)
                .with_context(|| format!("opening the key of CA {}", row.id))?,
        };
        let ca = CertificateAuthority::new(
            &row.id,
            &row.certificate_der,
            key,
            Some(config.public_base()),
        )?
        .with_delta_crls(config.delta_crls && row.id != ROOT_ID)
        .with_crl_partitions(if row.id == ROOT_ID {
            0
        } else {
            config.crl_partitions
        });
        cas.insert(row.id, ca);
    }
    if !ca_certificates.contains_key(ROOT_ID) {
        bail!("the database has no root CA");
    }
    let profiles = load_profiles(&config.policies_dir)?;
    let account_policy = AccountPolicy::load(&config.policies_dir)?;
    for profile in profiles.values() {
        if !cas.contains_key(profile.issuing_ca()) {
            bail!(
                "profile {} names issuing CA {:?}, which does not exist",
                profile.id(),
                profile.issuing_ca()
            );
        }
    }
    let now = SystemClock.now().as_secs();
    let ids: Vec<&str> = profiles.keys().map(String::as_str).collect();
    audit_log::append(
        &mut conn,
        now,
        "system",
        "profile.load",
        &config.policies_dir.display().to_string(),
        json!({"profiles": ids}),
    )?;
    drop(conn);
    Ok(Authority::assemble(Parts {
        config,
        pool,
        data_key,
        passphrase,
        responder_key,
        enrollment_key: Some(keys.enrollment),
        acme_key: Some(keys.acme),
        clock: clock.clone(),
        random,
        cas,
        root_id: ROOT_ID.into(),
        profiles,
        ca_certificates,
        ocsp_only: false,
        account_policy,
        custody: custody.clone(),
        activation: quorum.map(|q| {
            Arc::new(crate::custody::quorum::Activation::new(
                q, gates, custody, sealed_pin,
            ))
        }),
    })?)
}

/// An OCSP-only instance (`ca-server ocsp`): reads CA certificates and the delegated responder
/// keys from the shared database, never decrypts a CA key, and serves only the public listener.
pub fn open_ocsp_only(config: Config, passphrase: Zeroizing<String>) -> anyhow::Result<Authority> {
    let pool = open_pool(&config)?;
    let mut conn = pool.get()?;
    let (data_key, responder_key) =
        crate::store::settings::unlock_with_responder_key(&mut conn, &passphrase)?;
    crate::ocsp::reseal_responder_keys(&mut conn, &passphrase, &responder_key)?;
    let rows: Vec<(String, Vec<u8>)> = cas::table
        .select((cas::id, cas::certificate_der))
        .load(&mut conn)?;
    let ca_certificates: BTreeMap<String, Vec<u8>> = rows.into_iter().collect();
    if !ca_certificates.contains_key(ROOT_ID) {
        bail!("the database has no root CA");
    }
    drop(conn);
    let custody = Arc::new(crate::custody::keys::Custody::new(config.pkcs11.clone()));
    Ok(Authority::assemble(Parts {
        config,
        pool,
        data_key,
        passphrase,
        responder_key,
        enrollment_key: None,
        acme_key: None,
        clock: Arc::new(SystemClock),
        random: Arc::new(OsRandom),
        cas: BTreeMap::new(),
        root_id: ROOT_ID.into(),
        profiles: BTreeMap::new(),
        ca_certificates,
        ocsp_only: true,
        account_policy: AccountPolicy::default(),
        custody,
        activation: None,
    })?)
}

/// The API listener's certificate chain (PEM) and decrypted PKCS#8 key (DER).
pub fn api_tls_material(
    authority_config: &Config,
    pool: &DbPool,
    passphrase: &str,
) -> anyhow::Result<(String, Zeroizing<Vec<u8>>)> {
    if let (Some(cert), Some(key)) = (
        &authority_config.api_tls_cert,
        &authority_config.api_tls_key,
    ) {
        let chain =
            std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
        let key_pem = Zeroizing::new(
            std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
        );
        let pkey = openssl::pkey::PKey::private_key_from_pem(&key_pem)
            .with_context(|| format!("parsing {}", key.display()))?;
        return Ok((chain, Zeroizing::new(pkey.private_key_to_pkcs8()?)));
    }
    let mut conn = pool.get()?;
    let chain = setting(&mut conn, "api_tls_cert")?
        .context("no API TLS certificate stored; set api_tls_cert and api_tls_key")?;
    let key_pem = setting(&mut conn, "api_tls_key")?.context("no API TLS key stored")?;
    let key = ca_core::key::decrypt_pkcs8(key_pem.as_bytes(), passphrase.as_bytes())?;
    Ok((chain, key))
}

/// `ca-server dev`: a local instance for a newcomer. Creates (once) the data folder, a random
/// CA passphrase in `dev-passphrase`, the hierarchy, and an `admin` user whose password and TOTP
/// URI are printed and written to `dev-admin.json` (mode 0600).
pub fn dev(config: &Config) -> anyhow::Result<Zeroizing<String>> {
    ensure_data_dir(&config.data_dir)?;
    let pass_path = config.data_dir.join("dev-passphrase");
    let passphrase = if pass_path.exists() {
        Zeroizing::new(
            std::fs::read_to_string(&pass_path)
                .with_context(|| format!("reading {}", pass_path.display()))?
                .trim()
                .to_string(),
        )
    } else {
        let p = Zeroizing::new(hex::encode(random_bytes(24)?));
        write_private(&pass_path, p.as_bytes())?;
        p
    };
    let pool = open_pool(config)?;
    if !is_initialized(&pool)? {
        init(config, &passphrase, &OsRandom)?;
    }
    Ok(passphrase)
}

/// After `open` in dev mode: two trial accounts, created once — `admin` (admin and security
/// officer) and `officer` (security officer), so that one can ask for account changes and the
/// other approve them. Their passwords and TOTP URIs are printed and written to
/// `dev-admin.json` and `dev-officer.json` (mode 0600).
pub fn dev_admin(config: &Config, authority: &Authority) -> anyhow::Result<()> {
    for (name, roles) in [
        ("admin", &[Role::Admin, Role::SecurityOfficer][..]),
        ("officer", &[Role::SecurityOfficer][..]),
    ] {
        dev_account(config, authority, name, roles)?;
    }
    Ok(())
}

fn dev_account(
    config: &Config,
    authority: &Authority,
    name: &str,
    roles: &[Role],
) -> anyhow::Result<()> {
    let path = config.data_dir.join(format!("dev-{name}.json"));
    if path.exists() {
        println!("dev {name} credentials: {}", path.display());
        return Ok(());
    }
    let password = hex::encode(random_bytes(12)?);
    let mut conn = authority.conn()?;
    let enrolment = authority.accounts.create_dev_user(
        &mut conn,
        "system",
        name,
        &password,
        roles,
        (None, None),
    )?;
    let secret = ca_core::totp::TotpSecret::from_otpauth_uri(&enrolment.totp_uri)
        .context("the new account's TOTP URI carries no secret")?
        .to_base32();
    let body = json!({
        "username": name,
        "password": password,
        "totp_uri": enrolment.totp_uri,
        "totp_secret": secret.as_str(),
        "api_url": format!("https://{}", config.api_addr),
        "public_url": config.public_base(),
        "root_ca": config.data_dir.join("root-ca.pem").display().to_string(),
    });
    write_private(&path, serde_json::to_string_pretty(&body)?.as_bytes())?;
    println!("dev {name} (shown once; also in {}):", path.display());
    println!("  username: {name}");
    println!("  password: {password}");
    println!("  TOTP:     {}", enrolment.totp_uri);
    Ok(())
}

/// `ca-server unlock`: lifts a user's step-up lock and login lockout from the server itself,
/// for when every officer and admin who could do it through the API is locked (a stolen-session
/// attack can lock them all). Proves the CA passphrase first; audited as `ca-server (local)`.
pub fn unlock_user_locally(
    config: &Config,
    passphrase: &str,
    username: &str,
) -> anyhow::Result<()> {
    let pool = open_pool(config)?;
    let mut conn = pool.get()?;
    unlock(&mut conn, passphrase)?;
    let now = SystemClock.now().as_secs();
    crate::store::write_transaction::<_, anyhow::Error, _>(&mut conn, |conn| {
        let id: Option<String> = users::table
            .filter(users::username.eq(username))
            .select(users::id)
            .first(conn)
            .optional()?;
        match id {
            Some(id) => crate::accounts::step_up::lift_locks(conn, &id)?,
            None => bail!("no user {username}"),
        };
        audit_log::append(
            conn,
            now,
            "ca-server (local)",
            "user.unlock",
            username,
            json!({"local": true}),
        )?;
        Ok(())
    })
}
