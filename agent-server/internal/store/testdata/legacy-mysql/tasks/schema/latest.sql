-- Exec, script, fleet and layout tasks.
CREATE TABLE tasks (
  id          VARCHAR(64) NOT NULL,
  kind        VARCHAR(16) NOT NULL,
  spec        MEDIUMBLOB NULL,
  state       VARCHAR(16) NOT NULL,
  created_by  VARCHAR(255) NOT NULL DEFAULT '',
  created_at  DATETIME(6) NOT NULL,
  started_at  DATETIME(6) NULL,
  finished_at DATETIME(6) NULL,
  msg         TEXT NOT NULL,
  PRIMARY KEY (id),
  KEY tasks_created (created_at),
  KEY tasks_state (state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
