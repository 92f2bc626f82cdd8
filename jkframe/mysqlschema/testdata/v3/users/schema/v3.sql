ALTER TABLE users ADD COLUMN created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP;
-- names become unique; the COMMENT keeps its semicolon
ALTER TABLE users ADD UNIQUE KEY name (name);
