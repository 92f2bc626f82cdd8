-- Per-agent results of tasks.
CREATE TABLE results (
  task_id      VARCHAR(64) NOT NULL,
  agent_id     VARCHAR(128) NOT NULL,
  state        VARCHAR(16) NOT NULL,
  exit_code    INT NOT NULL DEFAULT 0,
  pid          INT NOT NULL DEFAULT 0,
  started_at   DATETIME(6) NULL,
  ended_at     DATETIME(6) NULL,
  msg          TEXT NOT NULL,
  output_head  MEDIUMBLOB NULL,
  output_tail  MEDIUMBLOB NULL,
  dropped      BIGINT NOT NULL DEFAULT 0,
  output_bytes BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (task_id, agent_id),
  KEY results_state (task_id, state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
