-- An account whose password an admin set must choose its own at first sign-in
-- (must_change_password), and an account created or given new credentials by someone else
-- cannot approve for approval_cooling_off_secs after credentials_set_at.
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN credentials_set_at BIGINT NOT NULL DEFAULT 0;
