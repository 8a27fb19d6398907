-- Mamori schema (SQLite). Times are Unix seconds; binary values are BYTEAs.
CREATE TABLE settings (
  name TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
);

CREATE TABLE cas (
  id TEXT PRIMARY KEY NOT NULL,
  parent_id TEXT,
  certificate_der BYTEA NOT NULL,
  key_pem TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE TABLE users (
  id TEXT PRIMARY KEY NOT NULL,
  username TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  totp_secret_enc BYTEA NOT NULL,
  roles TEXT NOT NULL,
  disabled BOOLEAN NOT NULL DEFAULT FALSE,
  failed_logins INTEGER NOT NULL DEFAULT 0,
  locked_until BIGINT,
  last_totp_step BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
  token_hash TEXT PRIMARY KEY NOT NULL,
  user_id TEXT NOT NULL REFERENCES users(id),
  created_at BIGINT NOT NULL,
  last_seen BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);

CREATE TABLE requests (
  id TEXT PRIMARY KEY NOT NULL,
  profile_id TEXT NOT NULL,
  requester_id TEXT NOT NULL REFERENCES users(id),
  csr_der BYTEA NOT NULL,
  justification TEXT NOT NULL,
  work_order TEXT,
  window_start BIGINT,
  window_end BIGINT,
  status TEXT NOT NULL,
  ca_id TEXT,
  certificate_serial TEXT,
  failure TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX requests_status ON requests(status);

CREATE TABLE decisions (
  request_id TEXT NOT NULL REFERENCES requests(id),
  approver_id TEXT NOT NULL REFERENCES users(id),
  approver_roles TEXT NOT NULL,
  verdict TEXT NOT NULL,
  second_factor BOOLEAN NOT NULL,
  comment TEXT NOT NULL,
  decided_at BIGINT NOT NULL,
  PRIMARY KEY (request_id, approver_id)
);

CREATE TABLE certificates (
  ca_id TEXT NOT NULL REFERENCES cas(id),
  serial TEXT NOT NULL,
  request_id TEXT,
  profile_id TEXT NOT NULL,
  subject TEXT NOT NULL,
  tbs_der BYTEA NOT NULL,
  der BYTEA,
  not_before BIGINT NOT NULL,
  not_after BIGINT NOT NULL,
  status TEXT NOT NULL,
  revoked_at BIGINT,
  revocation_reason TEXT,
  invalidity_date BIGINT,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (ca_id, serial)
);
CREATE INDEX certificates_status ON certificates(ca_id, status);

CREATE TABLE crls (
  ca_id TEXT PRIMARY KEY NOT NULL REFERENCES cas(id),
  crl_number BIGINT NOT NULL,
  this_update BIGINT NOT NULL,
  next_update BIGINT NOT NULL,
  der BYTEA NOT NULL
);

CREATE TABLE ocsp_responders (
  ca_id TEXT PRIMARY KEY NOT NULL REFERENCES cas(id),
  certificate_der BYTEA NOT NULL,
  key_pem TEXT NOT NULL,
  not_after BIGINT NOT NULL
);

CREATE TABLE audit_log (
  seq BIGINT PRIMARY KEY NOT NULL,
  at BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  details TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
