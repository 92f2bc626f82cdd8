-- The highest sequence number stored per agent journal (ack.v1): sent back
-- in the handshake so the agent replays only what the server lacks.
CREATE TABLE journal_acks (
  agent_id VARCHAR(128) NOT NULL,
  journal  VARCHAR(255) NOT NULL,
  seq      BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (agent_id, journal)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
