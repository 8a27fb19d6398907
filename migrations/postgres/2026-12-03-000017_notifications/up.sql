-- Notifications (issue 25): an outbox of notices to send, one row per event, channel and
-- recipient. The unique key makes a notice once-only across instances (each inserts it; the
-- second insert finds it there); an instance claims due rows for a short lease before it sends,
-- so two instances never send the same row at once. Failed deliveries are retried with
-- backoff and kept, with their last error, for the API and /metrics.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY NOT NULL,
    event_key TEXT NOT NULL,
    event TEXT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE UNIQUE INDEX notifications_once ON notifications (event_key, channel, recipient);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);

-- Where each person wants notices (approvals waiting for them, their certificates' expiry and
-- revocation): set by the person, with a fresh TOTP code. A table of its own: users is at
-- diesel's 16-column limit.
CREATE TABLE user_contacts (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id),
    email TEXT NOT NULL
);

-- The expiry scan reads valid certificates ending soon.
CREATE INDEX certificates_expiry ON certificates (status, not_after);
