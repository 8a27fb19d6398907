DROP TABLE ocsp_responses;
