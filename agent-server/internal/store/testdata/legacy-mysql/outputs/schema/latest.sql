-- Task output streams as chunks keyed by their byte offset (pos).
CREATE TABLE outputs (
  task_id  VARCHAR(64) NOT NULL,
  agent_id VARCHAR(128) NOT NULL,
  pos      BIGINT NOT NULL,
  data     MEDIUMBLOB NOT NULL,
  PRIMARY KEY (task_id, agent_id, pos)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
