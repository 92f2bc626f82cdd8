package store

// legacySQLiteSchema is the SQLite schema before v4 (when SQLite had its
// own schema source), steps 1-3, to build databases of that time.
var legacySQLiteSchema = []string{
	`CREATE TABLE agents (
		id TEXT PRIMARY KEY,
		type TEXT NOT NULL DEFAULT '',
		version TEXT NOT NULL DEFAULT '',
		ip TEXT NOT NULL DEFAULT '',
		mac TEXT NOT NULL DEFAULT '',
		host_name TEXT NOT NULL DEFAULT '',
		os TEXT NOT NULL DEFAULT '',
		platform TEXT NOT NULL DEFAULT '',
		platform_version TEXT NOT NULL DEFAULT '',
		kernel_version TEXT NOT NULL DEFAULT '',
		arch TEXT NOT NULL DEFAULT '',
		cpu TEXT NOT NULL DEFAULT '',
		cpu_core INTEGER NOT NULL DEFAULT 0,
		memory INTEGER NOT NULL DEFAULT 0,
		labels BLOB,
		facts BLOB,
		first_seen INTEGER NOT NULL,
		last_seen INTEGER NOT NULL,
		connected_at INTEGER
	);
	CREATE INDEX agents_type ON agents (type);
	CREATE INDEX agents_os ON agents (os, platform);
	CREATE TABLE agent_labels (
		agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
		k TEXT NOT NULL,
		v TEXT NOT NULL,
		PRIMARY KEY (agent_id, k)
	) WITHOUT ROWID;
	CREATE INDEX agent_labels_kv ON agent_labels (k, v);
	CREATE TABLE tasks (
		id TEXT PRIMARY KEY,
		kind TEXT NOT NULL,
		spec BLOB,
		state TEXT NOT NULL,
		created_by TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		started_at INTEGER,
		finished_at INTEGER,
		msg TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX tasks_created ON tasks (created_at);
	CREATE INDEX tasks_state ON tasks (state);
	CREATE TABLE results (
		task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
		agent_id TEXT NOT NULL,
		state TEXT NOT NULL,
		exit_code INTEGER NOT NULL DEFAULT 0,
		pid INTEGER NOT NULL DEFAULT 0,
		started_at INTEGER,
		ended_at INTEGER,
		msg TEXT NOT NULL DEFAULT '',
		output_head BLOB,
		output_tail BLOB,
		dropped INTEGER NOT NULL DEFAULT 0,
		output_bytes INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (task_id, agent_id)
	) WITHOUT ROWID;
	CREATE INDEX results_state ON results (task_id, state);
	CREATE TABLE outputs (
		task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
		agent_id TEXT NOT NULL,
		pos INTEGER NOT NULL,
		data BLOB NOT NULL,
		PRIMARY KEY (task_id, agent_id, pos)
	);
	CREATE TABLE audit (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		at INTEGER NOT NULL,
		actor TEXT NOT NULL DEFAULT '',
		action TEXT NOT NULL DEFAULT '',
		target TEXT NOT NULL DEFAULT '',
		request_id TEXT NOT NULL DEFAULT '',
		detail BLOB,
		result TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX audit_at ON audit (at);
	CREATE INDEX audit_actor ON audit (actor, at);
	CREATE INDEX audit_action ON audit (action, at);
	CREATE TABLE metrics (
		agent_id TEXT NOT NULL,
		category TEXT NOT NULL,
		at INTEGER NOT NULL,
		data BLOB,
		PRIMARY KEY (agent_id, category)
	) WITHOUT ROWID;
	CREATE TABLE usage_history (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		agent_id TEXT NOT NULL,
		at INTEGER NOT NULL,
		data BLOB
	);
	CREATE INDEX usage_agent_at ON usage_history (agent_id, at);
	CREATE INDEX usage_at ON usage_history (at);`,
	// v2: agent secrets (hashes) and journal high-water marks, so agents'
	// secrets and acknowledged results survive a server restart.
	`CREATE TABLE agent_secrets (
		agent_id TEXT PRIMARY KEY,
		hash BLOB NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE journal_acks (
		agent_id TEXT NOT NULL,
		journal TEXT NOT NULL,
		seq INTEGER NOT NULL,
		PRIMARY KEY (agent_id, journal)
	) WITHOUT ROWID;`,
	// v3: API tokens created at runtime (only the SHA-256 of the secret),
	// and the agent, remote address and HTTP status of audit entries.
	`CREATE TABLE api_tokens (
		name TEXT PRIMARY KEY,
		hash BLOB NOT NULL UNIQUE,
		scopes TEXT NOT NULL,
		selector TEXT NOT NULL DEFAULT '',
		created_by TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		expires_at INTEGER,
		revoked_at INTEGER,
		revoked_by TEXT NOT NULL DEFAULT ''
	) WITHOUT ROWID;
	ALTER TABLE audit ADD COLUMN agent TEXT NOT NULL DEFAULT '';
	ALTER TABLE audit ADD COLUMN remote TEXT NOT NULL DEFAULT '';
	ALTER TABLE audit ADD COLUMN status INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX audit_agent ON audit (agent, at);`,
}
