-- Directory accounts: a row here means the account's password is checked by the LDAP / Active
-- Directory server of `[directory]`, never a local hash. `dn` is where the directory last found
-- the person; `roles` the roles their groups allowed at the last sign-in or sync (NULL: no
-- mapping applies), intersected with users.roles whenever a session is resolved.
CREATE TABLE directory_accounts (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id),
    dn TEXT,
    roles TEXT,
    checked_at BIGINT NOT NULL DEFAULT 0
);
