// Package mysqlschema creates and upgrades MySQL/MariaDB tables from versioned
// SQL files held in an fs.FS, so that a binary carries its schema with it:
//
//	//go:embed schema
//	var schemaFiles embed.FS
//
//	sub, _ := fs.Sub(schemaFiles, "schema")
//	report, err := mysqlschema.Migrate(ctx, db, sub, mysqlschema.WithLogger(log))
//
// # Layout
//
// Each directory at the root of the fs.FS is a table, named after it:
//
//	<table>/schema/latest.sql  creates the table at its newest version (required)
//	<table>/schema/v<N>.sql    upgrades the table from version N-1 to N (N >= 2)
//	<table>/data/v<N>.sql      data that belongs to version N
//
// A table's newest version is its highest schema/v<N>.sql; a table with no
// v files is at version 1. schema/v1.sql may be kept as a record of the
// original CREATE but is never run: a fresh install runs latest.sql. The
// numbers 2…newest must have no gaps, and data/v<N>.sql needs N <= newest.
// Files not ending in .sql (README.md, …) are ignored; any other .sql file is
// an error. Migrate validates the whole layout and splits every file into
// statements before touching the database, and reports all problems at once
// (ErrLayout, ErrSyntax).
//
// A fresh install (no version record and no such table) runs latest.sql and
// then every data file, data/v1.sql first, and records the newest version.
// An upgrade from version S runs, for N = S+1 … newest, schema/v<N>.sql and
// then data/v<N>.sql if there is one, recording version N after each N. A
// database at a higher version than the files is refused (ErrNewer); a table
// that exists without a record is refused (ErrUnmanaged; adopt it with Force).
// Tables are processed in name order.
//
// # Statements
//
// Files are split like the mysql command line client does: ";" ends a
// statement except inside '…', "…" and `…` quotes and inside "-- ", "#" and
// "/* */" comments; "DELIMITER $$" lines change the delimiter for stored
// routines and triggers. Each statement is executed on its own, so the DSN
// needs no multiStatements.
//
// # Bookkeeping
//
// Two tables of the same database hold the state:
//
//	schema_versions(table_name, version, dirty, file, statements_done, done_hash, error, updated_at)
//	schema_log(id, table_name, from_version, to_version, file, first_statement,
//	           failed_statement, started_at, finished_at, ok, error)
//
// schema_log gets one row per file run (ok NULL while running or when the
// process died, 0 on failure, 1 on success); times are UTC. Versions reads
// schema_versions.
//
// # Locking
//
// Migrate takes GET_LOCK('mysqlschema:<database>') so that processes started
// together (several replicas of a service) migrate one at a time: the others
// wait up to the lock timeout (WithLockTimeout, default one minute), then
// find the work done and return without error. A named lock belongs to one
// server session, so the lock, every migration statement and RELEASE_LOCK run
// on one dedicated *sql.Conn taken from the pool: through the pool they could
// land on different sessions, the release would miss, and a dead connection
// would drop the lock while statements went on elsewhere. If the release
// fails the connection is discarded rather than returned to the pool, which
// ends the session and its lock.
//
// # Failures
//
// MySQL DDL is not transactional: when statement K of a file fails,
// statements 1…K-1 stay applied. Migrate records, before each file, that the
// table is dirty and which file it is in, and after every statement how many
// statements of that file succeeded together with a SHA-256 of their text.
// A failure is written to schema_versions.error and to the schema_log row
// (failed_statement, error), and Migrate returns ErrStatement naming the
// file, statement number, line and server error.
//
// The next run resumes: if statements 1…K-1 of that file are unchanged (same
// hash), it continues at statement K, so the operator's fix is to correct
// statement K in the file (or the data or server setting it tripped over) and
// run again. If the already applied statements were edited, or the file is
// no longer part of the upgrade path, Migrate refuses with ErrDirty, saying
// which file and statement stopped and what to do: bring the table to a known
// version by hand and record it with Force (for a failed first install: drop
// the table and delete its schema_versions row). A run killed in the middle
// of a statement resumes at that statement; if the server completed it after
// all, re-running it fails and the same ErrDirty/Force path applies.
package mysqlschema
