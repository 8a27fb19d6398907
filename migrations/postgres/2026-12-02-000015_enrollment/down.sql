DROP TABLE renewals;
DROP TABLE scep_ra;
DROP TABLE scep_transactions;
DROP TABLE enrollment_challenges;
