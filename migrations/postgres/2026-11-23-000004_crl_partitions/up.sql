-- Partitioned CRLs: each certificate remembers the CRL shard its distribution point names
-- (NULL: the CA's whole CRL), and every published CRL — complete or delta, whole or one shard —
-- is a row of published_crls, named as served (/crl/<name>.crl). cRLNumbers keep one sequence
-- per CA (crl_sequences), so they only grow across every scope. A CRL's DER is stored in chunks
-- of at most 1 MiB (published_crl_chunks), so that storing or reading a CRL of a million entries
-- never makes the database driver copy the whole of it at once.
ALTER TABLE certificates ADD COLUMN crl_partition INTEGER;
CREATE INDEX certificates_crl_scope ON certificates(ca_id, crl_partition, status, serial);
CREATE TABLE crl_sequences (
  ca_id TEXT PRIMARY KEY NOT NULL REFERENCES cas(id),
  last_number BIGINT NOT NULL
);
CREATE TABLE published_crls (
  name TEXT PRIMARY KEY NOT NULL,
  ca_id TEXT NOT NULL REFERENCES cas(id),
  crl_partition INTEGER,
  base_number BIGINT,
  crl_number BIGINT NOT NULL,
  this_update BIGINT NOT NULL,
  next_update BIGINT NOT NULL,
  der_len BIGINT NOT NULL
);
CREATE TABLE published_crl_chunks (
  name TEXT NOT NULL REFERENCES published_crls(name),
  seq INTEGER NOT NULL,
  der BYTEA NOT NULL,
  PRIMARY KEY (name, seq)
);
INSERT INTO crl_sequences (ca_id, last_number)
  SELECT ca_id, CASE WHEN last_number > crl_number THEN last_number ELSE crl_number END FROM crls;
INSERT INTO published_crls (name, ca_id, crl_partition, base_number, crl_number, this_update, next_update, der_len)
  SELECT ca_id, ca_id, NULL, NULL, crl_number, this_update, next_update, octet_length(der) FROM crls;
INSERT INTO published_crl_chunks (name, seq, der) SELECT ca_id, 0, der FROM crls;
INSERT INTO published_crls (name, ca_id, crl_partition, base_number, crl_number, this_update, next_update, der_len)
  SELECT ca_id || '-delta', ca_id, NULL, base_number, crl_number, this_update, next_update, octet_length(der) FROM delta_crls;
INSERT INTO published_crl_chunks (name, seq, der) SELECT ca_id || '-delta', 0, der FROM delta_crls;
DROP TABLE delta_crls;
DROP TABLE crls;
