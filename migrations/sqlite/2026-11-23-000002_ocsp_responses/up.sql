-- Pre-signed OCSP responses (RFC 5019), one per unexpired certificate, shared by every instance.
CREATE TABLE ocsp_responses (
  ca_id TEXT NOT NULL,
  serial TEXT NOT NULL,
  der BLOB NOT NULL,
  this_update BIGINT NOT NULL,
  next_update BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL,
  PRIMARY KEY (ca_id, serial)
);
CREATE INDEX ocsp_responses_updated ON ocsp_responses(updated_ms);
