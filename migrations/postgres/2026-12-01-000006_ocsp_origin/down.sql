DROP INDEX ocsp_responses_updated;
CREATE INDEX ocsp_responses_updated ON ocsp_responses(updated_ms);
ALTER TABLE ocsp_responses DROP COLUMN origin;
