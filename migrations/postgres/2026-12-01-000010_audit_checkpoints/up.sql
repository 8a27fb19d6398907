-- Signed checkpoints of the audit chain's head (ca_core::audit::Checkpoint), published at
-- /audit/checkpoints: an auditor who keeps one detects truncation and rewriting up to it.
CREATE TABLE audit_checkpoints (
  seq BIGINT PRIMARY KEY,
  hash TEXT NOT NULL,
  at BIGINT NOT NULL,
  signature TEXT NOT NULL
);
