-- API tokens created at runtime through /api/tokens. Only the SHA-256 of
-- the secret is kept; a revoked token stays (its name stays taken, so the
-- audit log's names remain unambiguous).
CREATE TABLE api_tokens (
  name       VARCHAR(64) NOT NULL,
  hash       VARBINARY(32) NOT NULL,
  scopes     TEXT NOT NULL,
  selector   TEXT NOT NULL,
  created_by VARCHAR(255) NOT NULL DEFAULT '',
  created_at DATETIME(6) NOT NULL,
  expires_at DATETIME(6) NULL,
  revoked_at DATETIME(6) NULL,
  revoked_by VARCHAR(255) NOT NULL DEFAULT '',
  PRIMARY KEY (name),
  UNIQUE KEY api_tokens_hash (hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
