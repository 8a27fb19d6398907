-- Account administration under four eyes: creation, role changes, credential resets and
-- re-enabling are requested by one admin (with step-up) and applied only when other people
-- approve (policies/accounts.toml). A created or reset account enrols its own password and TOTP
-- secret with a one-time code whose two halves go to the requester and to the final approver.
CREATE TABLE account_changes (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    requester_id TEXT NOT NULL,
    requester TEXT NOT NULL,
    status TEXT NOT NULL,
    approvals_required INTEGER NOT NULL,
    requester_half_hash TEXT,
    comment TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX account_changes_status ON account_changes (status, created_at);
CREATE TABLE account_change_decisions (
    change_id TEXT NOT NULL,
    approver_id TEXT NOT NULL,
    approver TEXT NOT NULL,
    verdict TEXT NOT NULL,
    comment TEXT NOT NULL,
    decided_at BIGINT NOT NULL,
    PRIMARY KEY (change_id, approver_id)
);
-- An account waiting for its holder to enrol: the SHA-256 of each half of the code.
CREATE TABLE enrolments (
    user_id TEXT PRIMARY KEY NOT NULL,
    code_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    failures INTEGER NOT NULL
);
