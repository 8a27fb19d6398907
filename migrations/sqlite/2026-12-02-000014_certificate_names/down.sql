DROP INDEX certificates_profile_subject_status;
CREATE INDEX certificates_profile_subject ON certificates (profile_id, subject);
DROP TABLE certificate_names;
