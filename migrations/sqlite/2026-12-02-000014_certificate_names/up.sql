-- The subjectAltNames of each certificate as one searchable line (`dns:gw.example ip:10.0.0.1`),
-- for the certificate list's `san` filter. Written with the certificate's reservation; rows
-- stored before this table existed are filled once when the server next starts
-- (`store::certificate_names::fill_missing`). A table of its own rather than a column: the
-- certificates table is at diesel's 16-column limit.
CREATE TABLE certificate_names (
    ca_id TEXT NOT NULL,
    serial TEXT NOT NULL,
    names TEXT NOT NULL,
    PRIMARY KEY (ca_id, serial)
) WITHOUT ROWID; -- one B-tree, not a rowid table plus its key's index: fewer pages per commit

-- Duplicate detection asks for the newest valid certificates of one subject under one profile.
-- With (profile_id, subject) alone the database read and sorted every certificate the subject
-- ever had at each submission: 430 issuances/s instead of 6,335 once one subject had 60,000
-- (bench/RESULTS.md). With status and created_at in the index it reads only the newest ones,
-- and with ca_id and serial too it answers from the index alone (no table page per row).
DROP INDEX certificates_profile_subject;
CREATE INDEX certificates_profile_subject_status
    ON certificates (profile_id, subject, status, created_at, ca_id, serial);
