package store

import (
	"regexp"
	"strings"
)

// migration is one step of the schema, from version i to i+1 (migrations[i]).
//
// The schema has one source: the statements below, written in MySQL's DDL
// with two markers, %TABLE% and %TABLE WITHOUT ROWID%, that end each CREATE
// TABLE. MySQL runs them as they are (the markers become the InnoDB, utf8mb4
// binary collation options); SQLite runs them through sqliteDDL, which maps
// the types (VARCHAR and TEXT → TEXT, INT, BIGINT and DATETIME(6) → INTEGER,
// VARBINARY and MEDIUMBLOB → BLOB; times are Unix microseconds there) and
// keeps WITHOUT ROWID. Each statement stands alone (no multi-statement
// strings), so both drivers run them one at a time.
//
// sqlite holds the steps SQLite needs beyond ddl: a SQLite table cannot
// change a column's default or drop a constraint in place, so a step that
// does is a rebuild (see sqliteRebuild). Append steps, never edit one: the
// version counts the steps applied (PRAGMA user_version on SQLite, the
// store_version table on MySQL).
type migration struct {
	ddl    []string
	sqlite []string
}

const (
	markTable        = "%TABLE%"
	markTableNoRowid = "%TABLE WITHOUT ROWID%"
)

// Tables, as created by the first step; later steps alter them.
const (
	agentsTable = `CREATE TABLE agents (
		id               VARCHAR(128) NOT NULL,
		type             VARCHAR(255) NOT NULL DEFAULT '',
		version          VARCHAR(255) NOT NULL DEFAULT '',
		ip               VARCHAR(255) NOT NULL DEFAULT '',
		mac              VARCHAR(255) NOT NULL DEFAULT '',
		host_name        VARCHAR(255) NOT NULL DEFAULT '',
		os               VARCHAR(255) NOT NULL DEFAULT '',
		platform         VARCHAR(255) NOT NULL DEFAULT '',
		platform_version VARCHAR(255) NOT NULL DEFAULT '',
		kernel_version   VARCHAR(255) NOT NULL DEFAULT '',
		arch             VARCHAR(255) NOT NULL DEFAULT '',
		cpu              VARCHAR(255) NOT NULL DEFAULT '',
		cpu_core         INT NOT NULL DEFAULT 0,
		memory           BIGINT NOT NULL DEFAULT 0,
		labels           MEDIUMBLOB NULL,
		facts            MEDIUMBLOB NULL,
		first_seen       DATETIME(6) NOT NULL,
		last_seen        DATETIME(6) NOT NULL,
		connected_at     DATETIME(6) NULL,
		PRIMARY KEY (id)
	) ` + markTable
	// agent_labels: one row per key, for label selectors (agents.labels
	// holds the same set as JSON for reading).
	agentLabelsTable = `CREATE TABLE agent_labels (
		agent_id VARCHAR(128) NOT NULL,
		k        VARCHAR(63) NOT NULL,
		v        VARCHAR(255) NOT NULL,
		PRIMARY KEY (agent_id, k)
	) ` + markTableNoRowid
	tasksTable = `CREATE TABLE tasks (
		id          VARCHAR(64) NOT NULL,
		kind        VARCHAR(16) NOT NULL,
		spec        MEDIUMBLOB NULL,
		state       VARCHAR(16) NOT NULL,
		created_by  VARCHAR(255) NOT NULL DEFAULT '',
		created_at  DATETIME(6) NOT NULL,
		started_at  DATETIME(6) NULL,
		finished_at DATETIME(6) NULL,
		msg         TEXT NOT NULL,
		PRIMARY KEY (id)
	) ` + markTable
	resultsTable = `CREATE TABLE results (
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
		PRIMARY KEY (task_id, agent_id)
	) ` + markTableNoRowid
	// outputs: task output streams as chunks keyed by their byte offset.
	outputsTable = `CREATE TABLE outputs (
		task_id  VARCHAR(64) NOT NULL,
		agent_id VARCHAR(128) NOT NULL,
		pos      BIGINT NOT NULL,
		data     MEDIUMBLOB NOT NULL,
		PRIMARY KEY (task_id, agent_id, pos)
	) ` + markTable
	// audit: append-only; the store has no path that updates or deletes a row.
	auditTable = `CREATE TABLE audit (
		id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
		at         DATETIME(6) NOT NULL,
		actor      VARCHAR(255) NOT NULL DEFAULT '',
		action     VARCHAR(255) NOT NULL DEFAULT '',
		target     TEXT NOT NULL,
		request_id VARCHAR(255) NOT NULL DEFAULT '',
		detail     MEDIUMBLOB NULL,
		result     TEXT NOT NULL
	) ` + markTable
	// metrics: the latest report per agent and category.
	metricsTable = `CREATE TABLE metrics (
		agent_id VARCHAR(128) NOT NULL,
		category VARCHAR(16) NOT NULL,
		at       DATETIME(6) NOT NULL,
		data     MEDIUMBLOB NULL,
		PRIMARY KEY (agent_id, category)
	) ` + markTableNoRowid
	// usage_history: recent usage samples, pruned by age.
	usageHistoryTable = `CREATE TABLE usage_history (
		id       BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
		agent_id VARCHAR(128) NOT NULL,
		at       DATETIME(6) NOT NULL,
		data     MEDIUMBLOB NULL
	) ` + markTable
	// agent_secrets: SHA-256 of each agent's secret (auth.v1).
	agentSecretsTable = `CREATE TABLE agent_secrets (
		agent_id VARCHAR(128) NOT NULL,
		hash     VARBINARY(64) NOT NULL,
		PRIMARY KEY (agent_id)
	) ` + markTableNoRowid
	// journal_acks: the highest sequence number stored per agent journal
	// (ack.v1).
	journalAcksTable = `CREATE TABLE journal_acks (
		agent_id VARCHAR(128) NOT NULL,
		journal  VARCHAR(255) NOT NULL,
		seq      BIGINT UNSIGNED NOT NULL,
		PRIMARY KEY (agent_id, journal)
	) ` + markTableNoRowid
	// api_tokens: tokens created at runtime; only the SHA-256 of the secret.
	// A revoked token stays, so its name stays taken.
	apiTokensTable = `CREATE TABLE api_tokens (
		name       VARCHAR(64) NOT NULL,
		hash       VARBINARY(32) NOT NULL,
		scopes     TEXT NOT NULL,
		selector   TEXT NOT NULL,
		created_by VARCHAR(255) NOT NULL DEFAULT '',
		created_at DATETIME(6) NOT NULL,
		expires_at DATETIME(6) NULL,
		revoked_at DATETIME(6) NULL,
		revoked_by VARCHAR(255) NOT NULL DEFAULT '',
		PRIMARY KEY (name)
	) ` + markTableNoRowid
)

// Indexes beside the primary keys, by table.
var (
	tasksIndexes = []string{
		"CREATE INDEX tasks_created ON tasks (created_at)",
		"CREATE INDEX tasks_state ON tasks (state)",
	}
	resultsIndexes = []string{"CREATE INDEX results_state ON results (task_id, state)"}
	// resultsAgentPID (v9) serves ResultByPID.
	resultsAgentPID = "CREATE INDEX results_agent_pid ON results (agent_id, pid)"
	auditIndexes    = []string{
		"CREATE INDEX audit_at ON audit (at)",
		"CREATE INDEX audit_actor ON audit (actor, at)",
		"CREATE INDEX audit_action ON audit (action, at)",
	}
	// auditV3 adds the agent a request reached, the client's address and
	// the HTTP status.
	auditV3 = []string{
		"ALTER TABLE audit ADD COLUMN agent VARCHAR(128) NOT NULL DEFAULT ''",
		"ALTER TABLE audit ADD COLUMN remote VARCHAR(255) NOT NULL DEFAULT ''",
		"ALTER TABLE audit ADD COLUMN status INT NOT NULL DEFAULT 0",
		"CREATE INDEX audit_agent ON audit (agent, at)",
	}
	apiTokensIndexes = []string{"CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (hash)"}
)

var migrations = []migration{
	// v1: agents, tasks with their results and output, audit, metrics.
	{ddl: concat(
		[]string{agentsTable,
			"CREATE INDEX agents_type ON agents (type)",
			"CREATE INDEX agents_os ON agents (os, platform)",
			agentLabelsTable,
			"CREATE INDEX agent_labels_kv ON agent_labels (k, v)",
			tasksTable},
		tasksIndexes,
		[]string{resultsTable}, resultsIndexes,
		[]string{outputsTable, auditTable}, auditIndexes,
		[]string{metricsTable, usageHistoryTable,
			"CREATE INDEX usage_agent_at ON usage_history (agent_id, at)",
			"CREATE INDEX usage_at ON usage_history (at)"},
	)},
	// v2: agent secrets and journal high-water marks survive a restart.
	{ddl: []string{agentSecretsTable, journalAcksTable}},
	// v3: API tokens created at runtime; agent, remote address and HTTP
	// status of audit entries.
	{ddl: concat([]string{apiTokensTable}, apiTokensIndexes, auditV3)},
	// v4: one schema for both backends. Databases that SQLite created from
	// its own schema before v4 had DEFAULT '' on TEXT columns (which MySQL
	// cannot have), an unnamed UNIQUE on api_tokens.hash and foreign keys
	// the code does not rely on; these four tables are rebuilt to the
	// definitions above. (Foreign keys of agent_labels and outputs stay in
	// such databases: rebuilding outputs would copy every task's output.)
	{sqlite: concat(
		sqliteRebuild("tasks", tasksTable, nil, tasksIndexes, taskCols),
		sqliteRebuild("results", resultsTable, nil, resultsIndexes, resultCols),
		sqliteRebuild("audit", auditTable, auditV3, auditIndexes, auditCols),
		sqliteRebuild("api_tokens", apiTokensTable, nil, apiTokensIndexes, apiTokenCols),
	)},
	// v5: log-collection projects and their nodes (logging.go).
	{ddl: loggingDDL},
	// v6: the action logs of installs (install.go).
	{ddl: installDDL},
	// v7: the members of clusters of servers (cluster.go).
	{ddl: clusterDDL},
	// v8: which member holds each agent's session (sessions.go).
	{ddl: sessionsDDL},
	// v9: a command's result found by its agent and pid (1.5's status and
	// pty routes) after a restart, without a scan of every result.
	{ddl: []string{resultsAgentPID}},
	// v10: the cluster member owning each task, with a lease and a fencing
	// token (taskowner.go).
	{ddl: taskOwnerDDL},
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// sqliteRebuild replaces table by a new one made by create and alters
// (written for table), copying cols, then recreates indexes; the migration
// runs it with foreign keys off, as SQLite's documentation for ALTER TABLE
// prescribes.
func sqliteRebuild(table, create string, alters, indexes []string, cols string) []string {
	tmp := table + "__new"
	out := []string{strings.Replace(create, "CREATE TABLE "+table+" (", "CREATE TABLE "+tmp+" (", 1)}
	for _, a := range alters {
		if strings.HasPrefix(a, "ALTER TABLE "+table+" ") {
			out = append(out, strings.Replace(a, "ALTER TABLE "+table+" ", "ALTER TABLE "+tmp+" ", 1))
		}
	}
	out = append(out,
		"INSERT INTO "+tmp+" ("+cols+") SELECT "+cols+" FROM "+table,
		"DROP TABLE "+table,
		"ALTER TABLE "+tmp+" RENAME TO "+table)
	for _, a := range alters {
		if strings.HasPrefix(a, "CREATE ") {
			out = append(out, a)
		}
	}
	return append(out, indexes...)
}

// statements returns step m's statements for dialect name.
func (m migration) statements(name string) []string {
	if name != DriverSQLite {
		out := make([]string, len(m.ddl))
		for i, q := range m.ddl {
			out[i] = mysqlDDL(q)
		}
		return out
	}
	var out []string
	for _, q := range concat(m.ddl, m.sqlite) {
		out = append(out, sqliteDDL(q))
	}
	return out
}

const mysqlTableOptions = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

func mysqlDDL(q string) string {
	q = strings.ReplaceAll(q, markTableNoRowid, mysqlTableOptions)
	return strings.ReplaceAll(q, markTable, mysqlTableOptions)
}

// sqliteTypes maps the MySQL types of the schema to SQLite's, in order.
var sqliteTypes = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\bBIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY\b`), "INTEGER PRIMARY KEY AUTOINCREMENT"},
	{regexp.MustCompile(`\bVARCHAR\(\d+\)`), "TEXT"},
	{regexp.MustCompile(`\b(VARBINARY\(\d+\)|MEDIUMBLOB)`), "BLOB"},
	{regexp.MustCompile(`\b(DATETIME\(6\)|BIGINT UNSIGNED|BIGINT|INT)\b`), "INTEGER"},
}

func sqliteDDL(q string) string {
	for _, t := range sqliteTypes {
		q = t.re.ReplaceAllString(q, t.with)
	}
	q = strings.ReplaceAll(q, markTableNoRowid, "WITHOUT ROWID")
	return strings.ReplaceAll(q, markTable, "")
}
