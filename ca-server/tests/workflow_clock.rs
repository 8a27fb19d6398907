//! The workflow in-process, on a clock the test moves: an approval request expires after its
//! profile's wait, a new account's cooling-off ends a day after it enrols, and the CRL is
//! republished at half its validity, an expired certificate's OCSP response leaves memory — each
//! by advancing a `ManualClock`, never by sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::sync::Arc;

use ca_core::approval::Verdict;
use ca_core::clock::{Clock, ManualClock};
use ca_core::key::{KeyAlgorithm, SoftwareKey};
use ca_core::name::{build_name, AttributeKind};
use ca_core::random::SeededRandom;
use ca_core::time::UnixTime;
use ca_core::totp::TotpSecret;
use ca_server::accounts::Caller;
use ca_server::api::{
    BreakGlassRequest, BreakGlassReviewRequest, DecisionRequest, EnrolRequest, LoginRequest,
    SubmitRequest,
};
use ca_server::bootstrap;
use ca_server::config::Config;
use ca_server::ra::{Authority, Submitted};
use ca_server::store::ids::{RequestId, Serial};
use zeroize::Zeroizing;

const PASSPHRASE: &str = "a passphrase for this test";

struct Instance {
    _dir: tempfile::TempDir,
    config: Config,
    authority: Arc<Authority>,
    clock: Arc<ManualClock>,
}

fn instance() -> Instance {
    let mut seed = [0u8; 32];
    ca_core::random::RandomSource::fill(&ca_core::random::OsRandom, &mut seed).unwrap();
    instance_seeded(seed)
}

/// An instance whose services draw serials, keys and TOTP secrets from a stream seeded with `seed`.
fn instance_seeded(seed: [u8; 32]) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().join("data"),
        policies_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
        ..Config::default()
    };
    bootstrap::init(&config, PASSPHRASE, &ca_core::random::OsRandom).unwrap();
    let clock = Arc::new(ManualClock::at(UnixTime::now()));
    let authority = Arc::new(
        bootstrap::open_with(
            config.clone(),
            Zeroizing::new(PASSPHRASE.into()),
            clock.clone(),
            Arc::new(SeededRandom::new(seed)),
        )
        .unwrap(),
    );
    Instance {
        _dir: dir,
        config,
        authority,
        clock,
    }
}

impl Instance {
    /// An account made on the server, enrolled and signed in: its caller and TOTP secret.
    fn person(&self, name: &str, role: &str) -> (Caller, TotpSecret) {
        let made = ca_server::accounts::local::add_user_locally(
            &self.config,
            PASSPHRASE,
            name,
            &[role.to_string()],
            (None, None),
            false,
        )
        .unwrap();
        let enrolled = self
            .authority
            .accounts
            .enrol(&EnrolRequest {
                username: name.into(),
                code: made.code,
                new_password: "a password of their own".into(),
            })
            .unwrap();
        let secret = TotpSecret::from_otpauth_uri(&enrolled.totp_uri).unwrap();
        let login = self
            .authority
            .accounts
            .login(&LoginRequest {
                username: name.into(),
                password: "a password of their own".into(),
                totp: self.code(&secret),
            })
            .unwrap();
        let caller = self.authority.accounts.authenticate(&login.token).unwrap();
        (caller, secret)
    }

    fn code(&self, secret: &TotpSecret) -> String {
        secret.code_at_step(self.clock.now().as_secs() / 30)
    }

    /// A staff certificate requested by an HR desk and approved by an officer once the
    /// cooling-off day has passed: the request's id and the approval's answer (issued).
    fn issued_staff(&self) -> (RequestId, ca_server::api::RequestView) {
        let (hr, _) = self.person("hr-desk", "staff-requester");
        let (officer, secret) = self.person("akira", "security-officer");
        let id = RequestId::parse(&self.staff_request(&hr)).unwrap();
        self.clock
            .advance(self.config.approval_cooling_off_secs + 30);
        let decided = self
            .authority
            .decide(
                &officer,
                &id,
                Verdict::Approve,
                &DecisionRequest {
                    totp: self.code(&secret),
                    comment: String::new(),
                },
            )
            .unwrap();
        assert_eq!(decided.status, "issued");
        (id, decided)
    }

    /// A staff certificate request (one security officer approves), pending.
    fn staff_request(&self, requester: &Caller) -> String {
        let der = staff_csr();
        let pem =
            der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, &der).unwrap();
        match self
            .authority
            .submit(
                requester,
                SubmitRequest {
                    profile: "staff".into(),
                    csr: pem,
                    justification: "new nurse".into(),
                    work_order: None,
                    not_before: None,
                    not_after: None,
                },
            )
            .unwrap()
        {
            Submitted::Stored(view) => {
                assert_eq!(view.status, "pending");
                view.id
            }
            other => panic!("a staff request waits for approval: {other:?}"),
        }
    }
}

/// A staff member's CSR (DER) with a new P-256 key: Hanako Test, EMP-0001, her e-mail.
fn staff_csr() -> Vec<u8> {
    let (key, _) =
        SoftwareKey::generate(KeyAlgorithm::EcdsaP256, &ca_core::random::OsRandom).unwrap();
    let subject = build_name(&[
        (AttributeKind::CN, "Hanako Test".into()),
        (AttributeKind::SerialNumber, "EMP-0001".into()),
    ])
    .unwrap();
    let email = x509_cert::ext::pkix::name::GeneralName::Rfc822Name(
        der::asn1::Ia5String::new("hanako@hospital.example").unwrap(),
    );
    ca_core::csr::build_csr(&subject, vec![email], &key).unwrap()
}

#[test]
fn the_services_draw_from_the_injected_random_source() {
    // Two instances on the same seed hand their first enrolled person the same TOTP secret (and
    // drew the same responder keys and audit key before that); another seed gives another.
    let secret_of = |seed: [u8; 32]| {
        let i = instance_seeded(seed);
        let (_, secret) = i.person("hana", "staff-requester");
        secret.to_base32().to_string()
    };
    let first = secret_of([5; 32]);
    assert_eq!(first, secret_of([5; 32]));
    assert_ne!(first, secret_of([6; 32]));
}

#[test]
fn a_request_expires_after_its_profiles_wait() {
    let i = instance();
    let (hr, _) = i.person("hr-desk", "staff-requester");
    let id = RequestId::parse(&i.staff_request(&hr)).unwrap();
    // The staff profile waits 72 h for its approval.
    i.clock.advance(72 * 3600 - 60);
    i.authority.expire_requests().unwrap();
    assert_eq!(i.authority.get_request(&hr, &id).unwrap().status, "pending");
    i.clock.advance(120);
    i.authority.expire_requests().unwrap();
    assert_eq!(i.authority.get_request(&hr, &id).unwrap().status, "expired");
}

#[test]
fn a_new_officer_approves_once_the_cooling_off_day_has_passed() {
    let i = instance();
    let (hr, _) = i.person("hr-desk", "staff-requester");
    let (officer, secret) = i.person("akira", "security-officer");
    let id = RequestId::parse(&i.staff_request(&hr)).unwrap();
    let approve = |i: &Instance| {
        i.authority.decide(
            &officer,
            &id,
            Verdict::Approve,
            &DecisionRequest {
                totp: i.code(&secret),
                comment: String::new(),
            },
        )
    };
    let refused = approve(&i).unwrap_err();
    assert!(
        refused.to_string().contains("approval_cooling_off_secs"),
        "{refused}"
    );
    // A day later (the caller stays as resolved; sessions are the accounts tests' concern).
    i.clock.advance(i.config.approval_cooling_off_secs + 30);
    let view = approve(&i).unwrap();
    assert_eq!(view.status, "issued", "{view:?}");
}

#[test]
fn the_crl_is_republished_at_half_its_validity() {
    let i = instance();
    let first = i.authority.crls.crl("issuing").unwrap();
    let half = i.config.crl_validity_secs / 2;
    i.clock.advance(half - 60);
    i.authority.maintain().unwrap();
    assert_eq!(
        i.authority.crls.crl("issuing").unwrap().number,
        first.number
    );
    i.clock.advance(120);
    i.authority.maintain().unwrap();
    let next = i.authority.crls.crl("issuing").unwrap();
    assert!(next.number > first.number);
    assert_eq!(next.this_update, i.clock.now().as_secs() as i64);
    assert_eq!(
        next.next_update,
        next.this_update + i.config.crl_validity_secs as i64
    );
}

#[test]
fn ocsp_responses_are_re_signed_at_half_validity_and_responders_renewed() {
    use ca_server::store::schema::{ocsp_responders, ocsp_responses};
    use diesel::prelude::*;
    let i = instance();
    // The first upkeep pre-signs the issuing CA's status and the responders' (the root's
    // delegated responder answers for them).
    i.authority.maintain().unwrap();
    let signed_at = |i: &Instance| -> Vec<(String, i64)> {
        let mut conn = i.authority.conn().unwrap();
        ocsp_responses::table
            .select((ocsp_responses::serial, ocsp_responses::this_update))
            .order(ocsp_responses::serial)
            .load(&mut *conn)
            .unwrap()
    };
    let responders = |i: &Instance| -> Vec<(String, i64)> {
        let mut conn = i.authority.conn().unwrap();
        ocsp_responders::table
            .select((ocsp_responders::ca_id, ocsp_responders::not_after))
            .order(ocsp_responders::ca_id)
            .load(&mut *conn)
            .unwrap()
    };
    let first = signed_at(&i);
    assert!(!first.is_empty());
    let half = i.config.ocsp_validity_secs / 2;
    i.clock.advance(half - 60);
    i.authority.maintain().unwrap();
    assert_eq!(signed_at(&i), first, "re-signed before half its validity");
    i.clock.advance(120);
    i.authority.maintain().unwrap();
    let newest = first.iter().map(|(_, t)| *t).max().unwrap();
    let second = signed_at(&i);
    assert_eq!(second.len(), first.len());
    assert!(
        second.iter().all(|(_, t)| *t > newest),
        "not all re-signed past half validity: {first:?} -> {second:?}"
    );
    // Responder certificates are renewed once inside their renewal window, not before.
    let before = responders(&i);
    let until_window =
        before.iter().map(|(_, n)| *n).min().unwrap() as u64 - i.clock.now().as_secs() - 3 * 86_400;
    i.clock.advance(until_window - 3600);
    i.authority.maintain().unwrap();
    assert_eq!(responders(&i), before, "renewed outside the window");
    i.clock.advance(2 * 3600);
    i.authority.maintain().unwrap();
    let after = responders(&i);
    assert_eq!(after.len(), before.len());
    assert!(
        after.iter().zip(&before).all(|(a, b)| a.1 > b.1),
        "{before:?} -> {after:?}"
    );
}

#[test]
fn a_certificate_renews_only_inside_its_window_and_not_after_expiry() {
    let i = instance();
    let (id, _) = i.issued_staff();
    let issued = i.authority.renew_view(id.as_str()).unwrap();
    let pem = issued.certificate_pem.unwrap();
    let (_, first) = x509_cert::der::pem::decode_vec(
        pem.split_inclusive("-----END CERTIFICATE-----\n")
            .next()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let not_after = <x509_cert::Certificate as der::Decode>::from_der(&first)
        .unwrap()
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs();
    // A renewal CSR: the same subject and e-mail, a new key.
    let csr = staff_csr();
    let renew = |i: &Instance| i.authority.renew(&first, &csr, "renew", None);

    let early = renew(&i).unwrap_err().to_string();
    assert!(early.contains("opens at"), "{early}");
    // The staff profile's window opens 30 days before expiry.
    let now = i.clock.now().as_secs();
    i.clock.advance(not_after - 30 * 86_400 - now + 60);
    match renew(&i).unwrap() {
        // staff renewals need the approval rule again (requires_approval = true).
        Submitted::Stored(view) => assert_eq!(view.status, "pending", "{view:?}"),
        other => panic!("a staff renewal waits for approval: {other:?}"),
    }
    // Past expiry, without grace: refused.
    let now = i.clock.now().as_secs();
    i.clock.advance(not_after - now + 1);
    let late = renew(&i).unwrap_err().to_string();
    assert!(late.contains("expired"), "{late}");
}

#[test]
fn the_scep_ra_certificate_is_renewed_in_its_window_and_the_old_one_kept() {
    let Instance {
        _dir,
        authority,
        clock,
        ..
    } = instance();
    let scep = ca_server::scep::ScepService::new(authority).unwrap();
    scep.maintain().unwrap();
    let ra_of = |scep: &ca_server::scep::ScepService| {
        let der = scep.ca_certificates("mdm-tablet").unwrap();
        let p7 = openssl::pkcs7::Pkcs7::from_der(&der).unwrap();
        let certs = p7.signed().unwrap().certificates().unwrap();
        certs
            .iter()
            .find(|c| format!("{:?}", c.subject_name()).contains("SCEP RA"))
            .unwrap()
            .to_der()
            .unwrap()
    };
    let first = ra_of(&scep);
    // scep-ra: 90 days, renewed from 30 days before expiry.
    clock.advance(59 * 86_400);
    scep.maintain().unwrap();
    assert_eq!(ra_of(&scep), first, "not yet in the renewal window");
    clock.advance(2 * 86_400);
    scep.maintain().unwrap();
    let second = ra_of(&scep);
    assert_ne!(second, first, "renewed inside the window");
    assert_eq!(
        scep.ra_count("issuing"),
        2,
        "the previous RA still opens requests"
    );
}

#[test]
fn an_unreviewed_break_glass_certificate_is_revoked_when_its_review_time_ends() {
    let i = instance();
    let (alice, alice_totp) = i.person("alice", "security-officer");
    let (bob, bob_totp) = i.person("bob", "security-officer");
    let code = i.code(&alice_totp);
    // Not from a new account: the cooling-off applies to break-glass as to approvals.
    let csr = || {
        der::pem::encode_string(
            "CERTIFICATE REQUEST",
            der::pem::LineEnding::LF,
            &staff_csr(),
        )
        .unwrap()
    };
    let request = |code: String| BreakGlassRequest {
        profile: "staff".into(),
        csr: csr(),
        emergency: "ER night shift: the card reader failed".into(),
        totp: code,
    };
    let refused = i
        .authority
        .break_glass_issue(&alice, request(code))
        .unwrap_err();
    assert!(
        refused.to_string().contains("approval_cooling_off_secs"),
        "{refused}"
    );
    i.clock.advance(i.config.approval_cooling_off_secs + 30);
    let submitted = i
        .authority
        .break_glass_issue(&alice, request(i.code(&alice_totp)))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let view = runtime
        .block_on(submitted.finish(i.authority.clone()))
        .unwrap();
    assert_eq!(view.status, "issued");
    let ca = view.ca.clone().unwrap();
    let serial = Serial::parse(view.serial.as_deref().unwrap()).unwrap();
    // One confirmation of the two needed.
    let reviewed = i
        .authority
        .break_glass_review(
            &bob,
            &view.id,
            &BreakGlassReviewRequest {
                verdict: "confirm".into(),
                comment: String::new(),
                totp: i.code(&bob_totp),
            },
        )
        .unwrap();
    assert_eq!(reviewed.status, "awaiting-review");
    let status = |i: &Instance| {
        (
            i.authority.break_glass_get(&bob, &view.id).unwrap().status,
            i.authority
                .get_certificate(&bob, &ca, &serial)
                .unwrap()
                .0
                .status,
        )
    };
    // The staff profile gives its reviewers 24 hours.
    i.clock.advance(24 * 3600 - 60);
    i.authority.maintain().unwrap();
    assert_eq!(status(&i), ("awaiting-review".into(), "valid".into()));
    i.clock.advance(120);
    i.authority.maintain().unwrap();
    assert_eq!(status(&i), ("revoked-unreviewed".into(), "revoked".into()));
    let (certificate, _) = i.authority.get_certificate(&bob, &ca, &serial).unwrap();
    assert_eq!(
        certificate.revocation_reason.as_deref(),
        Some("privilege-withdrawn")
    );
    assert!(i
        .authority
        .metrics
        .render()
        .contains("mamori_break_glass_unreviewed 0"));
}

/// The clock steps five minutes back (an NTP correction, a wrong manual setting) between a hold
/// and its release: the release's CRL and OCSP response keep the hold's time rather than going
/// back, and the cRLNumber still goes up.
#[test]
fn a_clock_stepped_back_never_moves_crls_or_ocsp_responses_back() {
    use ca_server::ra::StatusChange;
    use ca_server::store::schema::ocsp_responses;
    use diesel::prelude::*;
    let i = instance();
    let (alice, alice_totp) = i.person("alice", "security-officer");
    // Bob signs in now, so his next code (after the step back) is still later than his last.
    let (bob, bob_totp) = i.person("bob", "security-officer");
    i.clock.advance(i.config.approval_cooling_off_secs + 30);
    let csr = der::pem::encode_string(
        "CERTIFICATE REQUEST",
        der::pem::LineEnding::LF,
        &staff_csr(),
    )
    .unwrap();
    let submitted = i
        .authority
        .break_glass_issue(
            &alice,
            BreakGlassRequest {
                profile: "staff".into(),
                csr,
                emergency: "ER night shift: the card reader failed".into(),
                totp: i.code(&alice_totp),
            },
        )
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let view = runtime
        .block_on(submitted.finish(i.authority.clone()))
        .unwrap();
    let ca = view.ca.clone().unwrap();
    let serial = Serial::parse(view.serial.as_deref().unwrap()).unwrap();
    let ocsp_this_update = |i: &Instance| -> i64 {
        let mut conn = i.authority.conn().unwrap();
        ocsp_responses::table
            .filter(ocsp_responses::serial.eq(serial.to_string()))
            .select(ocsp_responses::this_update)
            .first(&mut *conn)
            .unwrap()
    };

    i.clock.advance(600);
    i.authority
        .change_status(
            &alice,
            &ca,
            &serial,
            StatusChange::Hold,
            &i.code(&alice_totp),
            "",
        )
        .unwrap();
    let held_crl = i.authority.crls.crl("issuing").unwrap();
    let held_ocsp = ocsp_this_update(&i);
    assert_eq!(held_crl.this_update, i.clock.now().as_secs() as i64);
    assert_eq!(held_ocsp, held_crl.this_update);

    i.clock.rewind(300);
    i.authority
        .change_status(
            &bob,
            &ca,
            &serial,
            StatusChange::Release,
            &i.code(&bob_totp),
            "",
        )
        .unwrap();
    let released_crl = i.authority.crls.crl("issuing").unwrap();
    assert!(released_crl.number > held_crl.number);
    assert_eq!(
        released_crl.this_update, held_crl.this_update,
        "the CRL after the step back kept the last thisUpdate"
    );
    assert_eq!(ocsp_this_update(&i), held_ocsp);
    // An upkeep in the stepped-back time signs nothing older either.
    i.authority.maintain().unwrap();
    assert!(i.authority.crls.crl("issuing").unwrap().this_update >= held_crl.this_update);
    assert!(ocsp_this_update(&i) >= held_ocsp);
    // Once the clock has caught up, times move on again (the upkeep past half validity).
    i.clock.advance(i.config.crl_validity_secs / 2 + 600);
    i.authority.maintain().unwrap();
    assert_eq!(
        i.authority.crls.crl("issuing").unwrap().this_update,
        i.clock.now().as_secs() as i64
    );
}

#[test]
fn an_expired_certificates_response_is_served_until_its_next_update_then_dropped() {
    use ca_server::store::schema::{certificates, ocsp_responses};
    use diesel::prelude::*;
    use std::sync::atomic::Ordering;
    let i = instance();
    let (_, decided) = i.issued_staff();
    let (ca, serial) = (decided.ca.unwrap(), decided.serial.unwrap());
    let not_after: i64 = {
        let mut conn = i.authority.conn().unwrap();
        certificates::table
            .find((&ca, &serial))
            .select(certificates::not_after)
            .first(&mut *conn)
            .unwrap()
    };
    // (thisUpdate, nextUpdate) of the stored response, if any.
    let stored = |i: &Instance| -> Option<(i64, i64)> {
        let mut conn = i.authority.conn().unwrap();
        ocsp_responses::table
            .filter(ocsp_responses::ca_id.eq(&ca))
            .filter(ocsp_responses::serial.eq(&serial))
            .select((ocsp_responses::this_update, ocsp_responses::next_update))
            .first(&mut *conn)
            .optional()
            .unwrap()
    };
    let now = |i: &Instance| i.clock.now().as_secs() as i64;
    i.authority.maintain().unwrap();
    assert!(stored(&i).is_some());

    // Ten minutes before expiry the upkeep still re-signs it (its response is a year old).
    i.clock.advance((not_after - 600 - now(&i)) as u64);
    i.authority.maintain().unwrap();
    let (signed, next_update) = stored(&i).unwrap();
    assert_eq!(signed, now(&i));
    let held = i.authority.ocsp.cached_responses();
    // Responses of the year jumped over (e.g. the renewed responders' old certificates) went
    // already: count from here.
    let evicted = || i.authority.metrics.ocsp_evicted.load(Ordering::Relaxed);
    let evicted_before = evicted();

    // Expired: that last response is kept and served until its nextUpdate, never re-signed,
    // even past half its validity (when every unexpired certificate's response is).
    i.clock.advance(1200);
    i.authority.maintain().unwrap();
    assert_eq!(i.authority.ocsp.cached_responses(), held);
    i.clock
        .advance((signed + i.config.ocsp_validity_secs as i64 / 2 + 60 - now(&i)) as u64);
    i.authority.maintain().unwrap();
    assert_eq!(
        stored(&i),
        Some((signed, next_update)),
        "re-signed after expiry"
    );
    assert_eq!(i.authority.ocsp.cached_responses(), held);
    assert_eq!(evicted(), evicted_before);

    // Past its nextUpdate it leaves memory; the database row goes a day later.
    i.clock.advance((next_update + 1 - now(&i)) as u64);
    i.authority.maintain().unwrap();
    assert_eq!(i.authority.ocsp.cached_responses(), held - 1);
    assert_eq!(evicted(), evicted_before + 1);
    assert!(stored(&i).is_some());
    i.clock.advance(86_400);
    i.authority.maintain().unwrap();
    assert_eq!(stored(&i), None);
    assert_eq!(i.authority.ocsp.cached_responses(), held - 1);
}
