DROP TABLE enrolments;
DROP TABLE account_change_decisions;
DROP TABLE account_changes;
