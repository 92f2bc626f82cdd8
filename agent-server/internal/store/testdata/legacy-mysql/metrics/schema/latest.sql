-- Latest metrics report per agent and category.
CREATE TABLE metrics (
  agent_id VARCHAR(128) NOT NULL,
  category VARCHAR(16) NOT NULL,
  at       DATETIME(6) NOT NULL,
  data     MEDIUMBLOB NULL,
  PRIMARY KEY (agent_id, category)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
