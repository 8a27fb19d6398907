DROP INDEX certificates_expiry;
DROP TABLE user_contacts;
DROP TABLE notifications;
