-- The audit chain's head for a transaction about to append to it, in one round trip: takes the
-- chain's lock (the transaction-scoped advisory lock `audit_log::serialize` takes for
-- 'mamori.audit') and then reads the newest entry. A VOLATILE function's queries each take a
-- fresh snapshot, so the read sees every entry committed before the lock was granted, as a
-- separate SELECT after the lock would. The lock is held until the caller's transaction ends.
CREATE FUNCTION mamori_audit_tail() RETURNS TABLE (seq BIGINT, hash TEXT)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('mamori.audit'));
    RETURN QUERY SELECT a.seq, a.hash FROM audit_log a ORDER BY a.seq DESC LIMIT 1;
END
$$;
