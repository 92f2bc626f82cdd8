CREATE TABLE events (
  id   BIGINT NOT NULL PRIMARY KEY,
  body TEXT NOT NULL,
  kind VARCHAR(16) NOT NULL DEFAULT 'info',
  at   DATETIME(6) NULL,
  KEY kind (kind)
);
