-- Step-up (a fresh TOTP code for approve, reject, revoke, hold, release) is limited: wrong codes
-- count per account and per session; at step_up_max_failures the account's step-up is locked
-- (step_up_locked_at) until another officer or an admin lifts it, and a session is ended at
-- step_up_session_failures. A correct code clears the account's count.
ALTER TABLE users ADD COLUMN step_up_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN step_up_locked_at BIGINT;
ALTER TABLE sessions ADD COLUMN step_up_failures INTEGER NOT NULL DEFAULT 0;
-- The organization and e-mail domain registered on an account (a vendor's company): profiles
-- with organization_from_account / domain_from_account hold a CSR's O and e-mail to them.
ALTER TABLE users ADD COLUMN organization TEXT;
ALTER TABLE users ADD COLUMN email_domain TEXT;
