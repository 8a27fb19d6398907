-- Device enrollment (SCEP, EST, renewal).
--
-- One-time enrollment codes ("challenge passwords") minted by a device enroller for one profile,
-- optionally bound to patterns the subject's CN and the subjectAltNames must match; valid for
-- minutes and used once. Only the SHA-256 of the code is stored.
CREATE TABLE enrollment_challenges (
    id TEXT PRIMARY KEY NOT NULL,
    code_sha256 TEXT NOT NULL UNIQUE,
    profile_id TEXT NOT NULL,
    cn_pattern TEXT,
    san_pattern TEXT,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    request_id TEXT
);
CREATE INDEX enrollment_challenges_created ON enrollment_challenges (created_at);

-- SCEP transactions: the client's transactionID, the SHA-256 of its signing key's
-- SubjectPublicKeyInfo (so one client cannot poll another's), the SHA-256 of its CSR's key, and
-- the request it created. A repeated PKCSReq with the same transactionID and keys answers the
-- request's state instead of creating a second one (certmonger regenerates CSR and self-signed
-- certificate on each retry). EST retries are kept here too: transaction `est:<CSR hash>`,
-- signer `est`.
CREATE TABLE scep_transactions (
    transaction_id TEXT NOT NULL,
    signer_sha256 TEXT NOT NULL,
    csr_key_sha256 TEXT NOT NULL,
    request_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (transaction_id, signer_sha256)
);

-- The SCEP RA certificate and its RSA key (sealed under a key derived from the CA passphrase),
-- one per issuing CA, renewed in upkeep like the OCSP responder's.
CREATE TABLE scep_ra (
    ca_id TEXT PRIMARY KEY NOT NULL,
    certificate_der BYTEA NOT NULL,
    key_sealed TEXT NOT NULL,
    not_after BIGINT NOT NULL
);

-- Renewals: which certificate a renewal replaced, and when the old one is revoked as superseded
-- (the profile's renewal.revoke_old_after; NULL: never by Mamori, it simply expires).
CREATE TABLE renewals (
    request_id TEXT PRIMARY KEY NOT NULL,
    old_ca_id TEXT NOT NULL,
    old_serial TEXT NOT NULL,
    revoke_old_at BIGINT,
    done BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX renewals_due ON renewals (done, revoke_old_at);
