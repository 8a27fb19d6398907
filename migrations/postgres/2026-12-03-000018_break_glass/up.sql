-- Break-glass issuance (issue 25): a security officer issued alone, with TOTP and a stated
-- emergency. Each one waits for `reviews_needed` other officers to confirm it by `review_due`;
-- a "misuse" verdict revokes it at once, and upkeep flags (and, if the profile says so,
-- revokes) one left unreviewed.
CREATE TABLE break_glass (
    -- The request it issued (no foreign key: the row is written in the same commit as the
    -- request, by the hook that runs before the request row in an issuance at once).
    request_id TEXT PRIMARY KEY NOT NULL,
    profile_id TEXT NOT NULL,
    officer_id TEXT NOT NULL REFERENCES users(id),
    emergency TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    review_due BIGINT NOT NULL,
    reviews_needed INTEGER NOT NULL,
    revoke_unreviewed BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    closed_at BIGINT
);
CREATE INDEX break_glass_open ON break_glass (status, review_due);

CREATE TABLE break_glass_reviews (
    request_id TEXT NOT NULL REFERENCES break_glass(request_id),
    reviewer_id TEXT NOT NULL REFERENCES users(id),
    verdict TEXT NOT NULL,
    comment TEXT NOT NULL,
    reviewed_at BIGINT NOT NULL,
    PRIMARY KEY (request_id, reviewer_id)
);
