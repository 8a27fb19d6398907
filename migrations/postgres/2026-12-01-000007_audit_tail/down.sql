DROP FUNCTION mamori_audit_tail();
