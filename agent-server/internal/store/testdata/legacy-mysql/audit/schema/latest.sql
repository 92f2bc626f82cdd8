-- Audit log: state-changing API calls and every request that touches a
-- host. Append-only: the store has no path that updates or deletes a row.
CREATE TABLE audit (
  id         BIGINT NOT NULL AUTO_INCREMENT,
  at         DATETIME(6) NOT NULL,
  actor      VARCHAR(255) NOT NULL DEFAULT '',
  action     VARCHAR(255) NOT NULL DEFAULT '',
  target     TEXT NOT NULL,
  agent      VARCHAR(128) NOT NULL DEFAULT '',
  remote     VARCHAR(255) NOT NULL DEFAULT '',
  status     INT NOT NULL DEFAULT 0,
  request_id VARCHAR(255) NOT NULL DEFAULT '',
  detail     MEDIUMBLOB NULL,
  result     TEXT NOT NULL,
  PRIMARY KEY (id),
  KEY audit_at (at),
  KEY audit_actor (actor, at),
  KEY audit_action (action, at),
  KEY audit_agent (agent, at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
