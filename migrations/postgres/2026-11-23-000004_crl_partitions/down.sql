CREATE TABLE crls (
  ca_id TEXT PRIMARY KEY NOT NULL REFERENCES cas(id),
  crl_number BIGINT NOT NULL,
  this_update BIGINT NOT NULL,
  next_update BIGINT NOT NULL,
  der BYTEA NOT NULL,
  last_number BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE delta_crls (
  ca_id TEXT PRIMARY KEY NOT NULL REFERENCES cas(id),
  crl_number BIGINT NOT NULL,
  base_number BIGINT NOT NULL,
  this_update BIGINT NOT NULL,
  next_update BIGINT NOT NULL,
  der BYTEA NOT NULL
);
INSERT INTO crls (ca_id, crl_number, this_update, next_update, der, last_number)
  SELECT p.ca_id, p.crl_number, p.this_update, p.next_update,
    (SELECT string_agg(c.der, ''::bytea ORDER BY c.seq) FROM published_crl_chunks c WHERE c.name = p.name),
    s.last_number
  FROM published_crls p JOIN crl_sequences s ON s.ca_id = p.ca_id WHERE p.name = p.ca_id;
INSERT INTO delta_crls (ca_id, crl_number, base_number, this_update, next_update, der)
  SELECT p.ca_id, p.crl_number, p.base_number, p.this_update, p.next_update,
    (SELECT string_agg(c.der, ''::bytea ORDER BY c.seq) FROM published_crl_chunks c WHERE c.name = p.name)
  FROM published_crls p WHERE p.name = p.ca_id || '-delta';
DROP TABLE published_crl_chunks;
DROP TABLE published_crls;
DROP TABLE crl_sequences;
DROP INDEX certificates_crl_scope;
ALTER TABLE certificates DROP COLUMN crl_partition;
