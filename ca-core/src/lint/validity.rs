//! Validity: order, encoding, the issuer's lifetime, the profile's maximum and backdating.

use x509_cert::time::Time;
use x509_cert::TbsCertificate;

use super::{Expectation, Findings, LintContext};
use crate::time::UnixTime;
use crate::time::BACKDATE_SECS;

fn encoding_ok(time: &Time) -> bool {
    let year = time.to_date_time().year();
    match time {
        Time::UtcTime(_) => year < 2050,
        Time::GeneralTime(_) => year >= 2050,
    }
}

pub(super) fn check(tbs: &TbsCertificate, ctx: &LintContext<'_>, out: &mut Findings) {
    let validity = &tbs.validity;
    if !encoding_ok(&validity.not_before) || !encoding_ok(&validity.not_after) {
        out.fail(
            "e_validity_encoding",
            "RFC 5280 §4.1.2.5",
            "UTCTime through 2049, GeneralizedTime from 2050",
        );
    }
    let not_before = UnixTime::from_x509_time(&validity.not_before);
    let not_after = UnixTime::from_x509_time(&validity.not_after);
    if not_after <= not_before {
        out.fail(
            "e_validity_order",
            "RFC 5280 §4.1.2.5",
            "notAfter must follow notBefore",
        );
    }
    if let Some(issuer_end) = ctx.issuer_not_after {
        if not_after > issuer_end {
            out.fail(
                "e_validity_within_issuer",
                "Mamori: never outlive the issuer",
                format!("notAfter {not_after} is after the issuer's {issuer_end}"),
            );
        }
    }
    if let Some(issuer_start) = ctx.issuer_not_before {
        if not_before < issuer_start {
            out.fail(
                "e_validity_within_issuer",
                "Mamori: never predate the issuer",
                format!("notBefore {not_before} is before the issuer's {issuer_start}"),
            );
        }
    }
    let earliest = ctx.now.minus(BACKDATE_SECS + 5);
    if not_before < earliest {
        out.fail(
            "e_backdate",
            "Mamori: at most one minute of backdating",
            format!("notBefore {not_before} is more than a minute in the past"),
        );
    }
    if let Expectation::Leaf {
        profile,
        requested_window,
        ..
    } = ctx.expectation
    {
        let lifetime = not_after.as_secs().saturating_sub(not_before.as_secs());
        if lifetime > profile.max_validity_secs() + BACKDATE_SECS {
            out.fail(
                "e_validity_profile_max",
                "profile validity.max",
                format!(
                    "lifetime {lifetime}s exceeds the profile's {}s",
                    profile.max_validity_secs()
                ),
            );
        }
        if !requested_window && not_before > ctx.now {
            out.fail(
                "e_validity_future",
                "profile validity.requested_window",
                "notBefore in the future without a requested window",
            );
        }
    }
}
