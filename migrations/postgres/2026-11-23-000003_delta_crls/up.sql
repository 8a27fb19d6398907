-- Delta CRLs (RFC 5280 §5.2.4): when each certificate's revocation status last changed, the last
-- cRLNumber used (complete and delta CRLs share one sequence), and the current delta per CA.
ALTER TABLE certificates ADD COLUMN status_changed_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX certificates_status_changed ON certificates(ca_id, status_changed_ms);
ALTER TABLE crls ADD COLUMN last_number BIGINT NOT NULL DEFAULT 0;
CREATE TABLE delta_crls (
  ca_id TEXT PRIMARY KEY NOT NULL REFERENCES cas(id),
  crl_number BIGINT NOT NULL,
  base_number BIGINT NOT NULL,
  this_update BIGINT NOT NULL,
  next_update BIGINT NOT NULL,
  der BYTEA NOT NULL
);
