DROP TABLE certificate_names;
