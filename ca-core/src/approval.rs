//! Approval rules as pure logic: from a profile's [`ApprovalRule`], a request and its decisions,
//! decide whether the request is pending, approved, rejected or expired.
//!
//! Distinct approvers only; the requester never counts; an approver must hold one of the rule's
//! roles and, where the rule says so, have passed a fresh second factor with that decision. One
//! eligible rejection rejects. [`check_decision`] refuses an ineligible decision before it is
//! recorded; [`evaluate`] ignores any that slipped through, so a bad row can never approve.

use std::collections::HashSet;

use crate::error::ApprovalError;
use crate::profile::ApprovalRule;
use crate::role::Role;
use crate::time::UnixTime;

/// A person, by their stable user id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub String);

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Approve.
    Approve,
    /// Reject.
    Reject,
}

/// One recorded decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Who decided.
    pub approver: UserId,
    /// The roles they held when deciding.
    pub approver_roles: Vec<Role>,
    /// Approve or reject.
    pub verdict: Verdict,
    /// Whether a fresh second factor was verified with this decision.
    pub second_factor_verified: bool,
    /// When.
    pub at: UnixTime,
}

/// The request being decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// Who asked.
    pub requester: UserId,
    /// When it was submitted.
    pub submitted_at: UnixTime,
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalState {
    /// Waiting for `needed` more approvals (it has `have`).
    Pending {
        /// Eligible approvals so far.
        have: u32,
        /// Approvals still needed.
        needed: u32,
    },
    /// Enough distinct eligible approvals: issue.
    Approved,
    /// An eligible approver rejected.
    Rejected {
        /// Who rejected.
        by: UserId,
    },
    /// Waited longer than the rule allows.
    Expired,
}

impl ApprovalState {
    /// A short name: pending, approved, rejected, expired.
    pub fn as_str(&self) -> &'static str {
        match self {
            ApprovalState::Pending { .. } => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Rejected { .. } => "rejected",
            ApprovalState::Expired => "expired",
        }
    }
}

fn eligibility(
    rule: &ApprovalRule,
    request: &PendingRequest,
    approver: &UserId,
    roles: &[Role],
    second_factor_verified: bool,
) -> Result<(), ApprovalError> {
    if *approver == request.requester {
        return Err(ApprovalError::SelfApproval);
    }
    if !roles.iter().any(|r| rule.approver_roles.contains(r)) {
        let names: Vec<&str> = rule.approver_roles.iter().map(|r| r.as_str()).collect();
        return Err(ApprovalError::RoleNotAllowed(names.join(", ")));
    }
    if rule.second_factor && !second_factor_verified {
        return Err(ApprovalError::SecondFactorRequired);
    }
    Ok(())
}

/// Decides where a request stands at `now`.
pub fn evaluate(
    rule: &ApprovalRule,
    request: &PendingRequest,
    decisions: &[Decision],
    now: UnixTime,
) -> ApprovalState {
    let deadline = request.submitted_at.plus(rule.max_wait_secs);
    let mut approvers = HashSet::new();
    let mut decided = HashSet::new();
    for decision in decisions {
        if decision.at > deadline {
            continue;
        }
        if eligibility(
            rule,
            request,
            &decision.approver,
            &decision.approver_roles,
            decision.second_factor_verified,
        )
        .is_err()
        {
            continue;
        }
        if !decided.insert(decision.approver.clone()) {
            continue;
        }
        match decision.verdict {
            Verdict::Reject => {
                return ApprovalState::Rejected {
                    by: decision.approver.clone(),
                }
            }
            Verdict::Approve => {
                approvers.insert(decision.approver.clone());
            }
        }
    }
    let have = u32::try_from(approvers.len()).unwrap_or(u32::MAX);
    if have >= rule.approvals {
        return ApprovalState::Approved;
    }
    if now > deadline {
        return ApprovalState::Expired;
    }
    ApprovalState::Pending {
        have,
        needed: rule.approvals - have,
    }
}

/// Checks that a new decision may be recorded: the request is pending, the approver is not the
/// requester, has not decided already, holds an approver role, and passed a fresh second factor
/// if the rule demands one.
pub fn check_decision(
    rule: &ApprovalRule,
    request: &PendingRequest,
    decisions: &[Decision],
    new: &Decision,
    now: UnixTime,
) -> Result<(), ApprovalError> {
    let state = evaluate(rule, request, decisions, now);
    if !matches!(state, ApprovalState::Pending { .. }) {
        return Err(ApprovalError::NotPending(state.as_str().to_string()));
    }
    eligibility(
        rule,
        request,
        &new.approver,
        &new.approver_roles,
        new.second_factor_verified,
    )?;
    if decisions.iter().any(|d| d.approver == new.approver) {
        return Err(ApprovalError::AlreadyDecided);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(approvals: u32) -> ApprovalRule {
        ApprovalRule {
            approvals,
            approver_roles: vec![Role::SecurityOfficer],
            second_factor: true,
            max_wait_secs: 3_600,
        }
    }

    fn request() -> PendingRequest {
        PendingRequest {
            requester: UserId("vendor".into()),
            submitted_at: UnixTime(1_000),
        }
    }

    fn decision(who: &str, role: Role, verdict: Verdict, mfa: bool, at: u64) -> Decision {
        Decision {
            approver: UserId(who.into()),
            approver_roles: vec![role],
            verdict,
            second_factor_verified: mfa,
            at: UnixTime(at),
        }
    }

    use Role::*;
    use Verdict::*;

    #[test]
    fn ok_two_officers() {
        let d = [
            decision("alice", SecurityOfficer, Approve, true, 1_100),
            decision("bob", SecurityOfficer, Approve, true, 1_200),
        ];
        assert_eq!(
            evaluate(&rule(2), &request(), &d, UnixTime(1_300)),
            ApprovalState::Approved
        );
    }

    #[test]
    fn one_officer_is_pending() {
        let d = [decision("alice", SecurityOfficer, Approve, true, 1_100)];
        assert_eq!(
            evaluate(&rule(2), &request(), &d, UnixTime(1_300)),
            ApprovalState::Pending { have: 1, needed: 1 }
        );
    }

    #[test]
    fn same_officer_twice_counts_once() {
        let d = [
            decision("alice", SecurityOfficer, Approve, true, 1_100),
            decision("alice", SecurityOfficer, Approve, true, 1_200),
        ];
        assert_eq!(
            evaluate(&rule(2), &request(), &d, UnixTime(1_300)),
            ApprovalState::Pending { have: 1, needed: 1 }
        );
    }

    #[test]
    fn requester_never_counts() {
        let d = [
            decision("vendor", SecurityOfficer, Approve, true, 1_100),
            decision("alice", SecurityOfficer, Approve, true, 1_200),
        ];
        assert_eq!(
            evaluate(&rule(2), &request(), &d, UnixTime(1_300)),
            ApprovalState::Pending { have: 1, needed: 1 }
        );
    }

    #[test]
    fn wrong_role_and_missing_second_factor_do_not_count() {
        let d = [
            decision("carol", DeviceEnroller, Approve, true, 1_100),
            decision("dave", SecurityOfficer, Approve, false, 1_150),
            decision("alice", SecurityOfficer, Approve, true, 1_200),
        ];
        assert_eq!(
            evaluate(&rule(2), &request(), &d, UnixTime(1_300)),
            ApprovalState::Pending { have: 1, needed: 1 }
        );
    }

    #[test]
    fn eligible_rejection_rejects() {
        let d = [
            decision("alice", SecurityOfficer, Approve, true, 1_100),
            decision("bob", SecurityOfficer, Reject, true, 1_200),
        ];
        assert_eq!(
            evaluate(&rule(2), &request(), &d, UnixTime(1_300)),
            ApprovalState::Rejected {
                by: UserId("bob".into())
            }
        );
    }

    #[test]
    fn ineligible_rejection_is_ignored() {
        let d = [decision("vendor", SecurityOfficer, Reject, true, 1_100)];
        assert!(matches!(
            evaluate(&rule(1), &request(), &d, UnixTime(1_300)),
            ApprovalState::Pending { .. }
        ));
    }

    #[test]
    fn expires_after_max_wait_and_late_decisions_do_not_count() {
        assert_eq!(
            evaluate(&rule(1), &request(), &[], UnixTime(4_601)),
            ApprovalState::Expired
        );
        assert!(matches!(
            evaluate(&rule(1), &request(), &[], UnixTime(4_600)),
            ApprovalState::Pending { .. }
        ));
        let late = [decision("alice", SecurityOfficer, Approve, true, 4_700)];
        assert_eq!(
            evaluate(&rule(1), &request(), &late, UnixTime(4_800)),
            ApprovalState::Expired
        );
    }

    #[test]
    fn zero_approvals_is_approved_at_once() {
        assert_eq!(
            evaluate(&rule(0), &request(), &[], UnixTime(1_000)),
            ApprovalState::Approved
        );
    }

    #[test]
    fn check_decision_cases() {
        let r = rule(2);
        let now = UnixTime(1_300);
        let first = decision("alice", SecurityOfficer, Approve, true, 1_100);
        type Case = (
            &'static str,
            Vec<Decision>,
            Decision,
            Result<(), ApprovalError>,
        );
        let cases: Vec<Case> = vec![
            ("ok", vec![], first.clone(), Ok(())),
            (
                "self",
                vec![],
                decision("vendor", SecurityOfficer, Approve, true, 1_100),
                Err(ApprovalError::SelfApproval),
            ),
            (
                "twice",
                vec![first.clone()],
                first.clone(),
                Err(ApprovalError::AlreadyDecided),
            ),
            (
                "role",
                vec![],
                decision("x", Auditor, Approve, true, 1_100),
                Err(ApprovalError::RoleNotAllowed("security-officer".into())),
            ),
            (
                "mfa",
                vec![],
                decision("x", SecurityOfficer, Approve, false, 1_100),
                Err(ApprovalError::SecondFactorRequired),
            ),
            (
                "done",
                vec![
                    first.clone(),
                    decision("bob", SecurityOfficer, Approve, true, 1_200),
                ],
                decision("carol", SecurityOfficer, Approve, true, 1_250),
                Err(ApprovalError::NotPending("approved".into())),
            ),
        ];
        for (name, existing, new, expected) in cases {
            assert_eq!(
                check_decision(&r, &request(), &existing, &new, now),
                expected,
                "{name}"
            );
        }
    }
}
