-- SHA-256 of each agent's secret (auth.v1): a reconnect that proves the
-- secret replaces the agent's stale session.
CREATE TABLE agent_secrets (
  agent_id VARCHAR(128) NOT NULL,
  hash     VARBINARY(64) NOT NULL,
  PRIMARY KEY (agent_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
