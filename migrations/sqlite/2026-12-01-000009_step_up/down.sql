ALTER TABLE users DROP COLUMN email_domain;
ALTER TABLE users DROP COLUMN organization;
ALTER TABLE sessions DROP COLUMN step_up_failures;
ALTER TABLE users DROP COLUMN step_up_locked_at;
ALTER TABLE users DROP COLUMN step_up_failures;
