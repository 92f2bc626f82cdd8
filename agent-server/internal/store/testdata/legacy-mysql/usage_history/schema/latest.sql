-- Recent usage samples, pruned by age.
CREATE TABLE usage_history (
  id       BIGINT NOT NULL AUTO_INCREMENT,
  agent_id VARCHAR(128) NOT NULL,
  at       DATETIME(6) NOT NULL,
  data     MEDIUMBLOB NULL,
  PRIMARY KEY (id),
  KEY usage_agent_at (agent_id, at),
  KEY usage_at (at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
