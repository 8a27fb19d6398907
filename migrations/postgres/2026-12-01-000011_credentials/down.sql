ALTER TABLE users DROP COLUMN credentials_set_at;
ALTER TABLE users DROP COLUMN must_change_password;
