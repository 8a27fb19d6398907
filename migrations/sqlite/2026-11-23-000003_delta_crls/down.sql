DROP TABLE delta_crls;
DROP INDEX certificates_status_changed;
ALTER TABLE crls DROP COLUMN last_number;
ALTER TABLE certificates DROP COLUMN status_changed_ms;
