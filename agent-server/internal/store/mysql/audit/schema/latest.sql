-- Audit log of state-changing API calls.
CREATE TABLE audit (
  id         BIGINT NOT NULL AUTO_INCREMENT,
  at         DATETIME(6) NOT NULL,
  actor      VARCHAR(255) NOT NULL DEFAULT '',
  action     VARCHAR(255) NOT NULL DEFAULT '',
  target     TEXT NOT NULL,
  request_id VARCHAR(255) NOT NULL DEFAULT '',
  detail     MEDIUMBLOB NULL,
  result     TEXT NOT NULL,
  PRIMARY KEY (id),
  KEY audit_at (at),
  KEY audit_actor (actor, at),
  KEY audit_action (action, at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
