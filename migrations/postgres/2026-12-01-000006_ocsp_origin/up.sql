-- Which ca-server process stored each OCSP response: a random number each process draws at
-- start (0 for rows stored before this column). A process's once-a-second poll of the shared
-- database skips the rows it stored itself (it cached them when it stored them): during issuance
-- those were nearly all of the rows it read, each about six times over the poll's 5 s look-back.
ALTER TABLE ocsp_responses ADD COLUMN origin BIGINT NOT NULL DEFAULT 0;
DROP INDEX ocsp_responses_updated;
CREATE INDEX ocsp_responses_updated ON ocsp_responses(updated_ms, origin);
