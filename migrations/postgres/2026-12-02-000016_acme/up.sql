-- ACME (RFC 8555) for profiles that serve it.
--
-- External Account Binding keys: minted by a security officer (with TOTP step-up) for one
-- profile and a list of name patterns (`ehr.hospital.example`, `*.ehr.hospital.example`); the
-- HMAC key is sealed under the enrollment key and shown once. Bound to the first account that
-- presents it; revocable, which deactivates that account.
CREATE TABLE acme_eab_keys (
    id TEXT PRIMARY KEY NOT NULL,
    profile_id TEXT NOT NULL,
    name_patterns TEXT NOT NULL,
    key_sealed TEXT NOT NULL,
    label TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    account_id TEXT
);
CREATE INDEX acme_eab_keys_created ON acme_eab_keys (created_at);

-- Accounts: one per account key (RFC 7638 thumbprint) and profile directory.
CREATE TABLE acme_accounts (
    id TEXT PRIMARY KEY NOT NULL,
    profile_id TEXT NOT NULL,
    key_thumbprint TEXT NOT NULL,
    jwk TEXT NOT NULL,
    eab_id TEXT NOT NULL REFERENCES acme_eab_keys(id),
    status TEXT NOT NULL,
    contact TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (profile_id, key_thumbprint)
);

-- Orders: their DNS identifiers (JSON array), state, and once finalized the request that
-- issued the certificate (certificates.request_id leads to it); `replaces` is RFC 9773's certificate identifier of the one it renews.
CREATE TABLE acme_orders (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES acme_accounts(id),
    status TEXT NOT NULL,
    identifiers TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    request_id TEXT,
    error TEXT,
    replaces TEXT
);
CREATE INDEX acme_orders_account ON acme_orders (account_id, created_at);
CREATE INDEX acme_orders_request ON acme_orders (request_id);

-- Authorizations: one DNS name of one order, its token, and which challenge settled it.
CREATE TABLE acme_authorizations (
    id TEXT PRIMARY KEY NOT NULL,
    order_id TEXT NOT NULL REFERENCES acme_orders(id),
    identifier TEXT NOT NULL,
    status TEXT NOT NULL,
    token TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    challenge_type TEXT,
    validated_at BIGINT,
    error TEXT
);
CREATE INDEX acme_authorizations_order ON acme_authorizations (order_id);

-- Replay nonces (RFC 8555 §6.5): issued, then deleted when used or expired, so that every
-- instance sharing the database refuses a nonce used through another.
CREATE TABLE acme_nonces (
    nonce TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX acme_nonces_expiry ON acme_nonces (expires_at);
