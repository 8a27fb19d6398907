-- Finding the valid certificates of one subject under one profile (duplicate detection at every
-- submission) by index instead of a scan of every certificate.
CREATE INDEX certificates_profile_subject ON certificates (profile_id, subject);
