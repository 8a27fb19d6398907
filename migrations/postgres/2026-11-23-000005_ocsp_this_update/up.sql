-- The upkeep looks for responses past half their validity (this_update <= now - half) every
-- maintenance interval; without an index that was a scan of every stored response.
CREATE INDEX ocsp_responses_this_update ON ocsp_responses(this_update);
