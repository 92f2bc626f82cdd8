-- Agent labels, one row per key, for label selectors (agents.labels holds
-- the same set as JSON for reading).
CREATE TABLE agent_labels (
  agent_id VARCHAR(128) NOT NULL,
  k        VARCHAR(63) NOT NULL,
  v        VARCHAR(255) NOT NULL,
  PRIMARY KEY (agent_id, k),
  KEY agent_labels_kv (k, v)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
