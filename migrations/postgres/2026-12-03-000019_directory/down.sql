DROP TABLE directory_accounts;
