package store

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/agentfleet/jkframe/mysqlschema/mysqltest"
)

// schemaDesc describes a database's schema for comparison: one entry per
// table, column, primary key and index, keyed by what it describes
// ("audit.status", "audit index audit_agent"), valued by the normalised
// definition. Bookkeeping tables are left out.
type schemaDesc map[string]string

// bookkeeping tables are not part of the store's schema.
var bookkeeping = map[string]bool{
	"sqlite_sequence": true, "store_version": true,
	"schema_versions": true, "schema_migrations_log": true, "schema_log": true,
}

// normType maps a column type to its class: the types sqliteDDL maps to
// each other are one class, DATETIME(6) included (SQLite keeps times as
// INTEGER Unix microseconds).
func normType(t string) string {
	t = strings.ToLower(t)
	if i := strings.IndexByte(t, '('); i >= 0 {
		t = t[:i]
	}
	t = strings.TrimSpace(strings.TrimSuffix(t, " unsigned"))
	switch t {
	case "integer", "int", "bigint", "datetime":
		return "integer"
	case "text", "varchar":
		return "text"
	case "blob", "mediumblob", "varbinary":
		return "blob"
	}
	return "unknown type " + t
}

// normDefault maps a column default to one spelling: none, or the SQL
// literal (” for an empty string, 0 for zero).
func normDefault(d sql.NullString, class string) string {
	if !d.Valid || d.String == "NULL" {
		return "none"
	}
	if class == "text" && !strings.HasPrefix(d.String, "'") {
		return "'" + d.String + "'" // MySQL 8 reports string defaults unquoted
	}
	return d.String
}

func colDesc(class string, notNull bool, def string, autoInc bool) string {
	s := class
	if notNull {
		s += " NOT NULL"
	} else {
		s += " NULL"
	}
	s += " DEFAULT " + def
	if autoInc {
		s += " AUTO_INCREMENT"
	}
	return s
}

func sqliteSchemaDesc(t *testing.T, db *sql.DB) schemaDesc {
	t.Helper()
	ctx := context.Background()
	d := schemaDesc{}
	tables := mysqltest.QueryStrings(t, db, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
	for _, tb := range tables {
		if bookkeeping[tb] {
			continue
		}
		d[tb] = "table"
		var create string
		if err := db.QueryRowContext(ctx, "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", tb).Scan(&create); err != nil {
			t.Fatal(err)
		}
		rows, err := db.QueryContext(ctx, "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?)", tb)
		if err != nil {
			t.Fatal(err)
		}
		pk := map[int]string{}
		for rows.Next() {
			var name, typ string
			var notNull bool
			var def sql.NullString
			var pkPos int
			if err := rows.Scan(&name, &typ, &notNull, &def, &pkPos); err != nil {
				t.Fatal(err)
			}
			class := normType(typ)
			autoInc := pkPos > 0 && strings.Contains(strings.ToUpper(create), "AUTOINCREMENT") && class == "integer"
			if pkPos > 0 {
				pk[pkPos] = name
				notNull = true // an INTEGER PRIMARY KEY is the rowid, never NULL
			}
			d[tb+"."+name] = colDesc(class, notNull, normDefault(def, class), autoInc)
		}
		rows.Close()
		var pkCols []string
		for i := 1; i <= len(pk); i++ {
			pkCols = append(pkCols, pk[i])
		}
		d[tb+" primary key"] = strings.Join(pkCols, ", ")
		for _, idx := range mysqltest.QueryStrings(t, db, "SELECT name FROM pragma_index_list(?) WHERE origin <> 'pk'", tb) {
			var unique bool
			if err := db.QueryRowContext(ctx, "SELECT \"unique\" FROM pragma_index_list(?) WHERE name = ?", tb, idx).Scan(&unique); err != nil {
				t.Fatal(err)
			}
			cols := mysqltest.QueryStrings(t, db, "SELECT name FROM pragma_index_info(?) ORDER BY seqno", idx)
			d[tb+" index "+idx] = indexDesc(cols, unique)
		}
	}
	return d
}

func indexDesc(cols []string, unique bool) string {
	s := "(" + strings.Join(cols, ", ") + ")"
	if unique {
		s = "UNIQUE " + s
	}
	return s
}

func mysqlSchemaDesc(t *testing.T, db *sql.DB) schemaDesc {
	t.Helper()
	ctx := context.Background()
	d := schemaDesc{}
	for _, tb := range mysqltest.QueryStrings(t, db, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME") {
		if bookkeeping[tb] {
			continue
		}
		d[tb] = "table"
		rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA
			FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, tb)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name, typ, nullable, extra string
			var def sql.NullString
			if err := rows.Scan(&name, &typ, &nullable, &def, &extra); err != nil {
				t.Fatal(err)
			}
			class := normType(typ)
			d[tb+"."+name] = colDesc(class, nullable == "NO", normDefault(def, class), strings.Contains(strings.ToLower(extra), "auto_increment"))
		}
		rows.Close()
		rows, err = db.QueryContext(ctx, `SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX`, tb)
		if err != nil {
			t.Fatal(err)
		}
		cols := map[string][]string{}
		unique := map[string]bool{}
		for rows.Next() {
			var idx, col string
			var nonUnique bool
			if err := rows.Scan(&idx, &nonUnique, &col); err != nil {
				t.Fatal(err)
			}
			cols[idx] = append(cols[idx], col)
			unique[idx] = !nonUnique
		}
		rows.Close()
		d[tb+" primary key"] = strings.Join(cols["PRIMARY"], ", ")
		for idx, c := range cols {
			if idx != "PRIMARY" {
				d[tb+" index "+idx] = indexDesc(c, unique[idx])
			}
		}
	}
	return d
}

// diffSchemas lists, sorted, every entry on which a and b differ.
func diffSchemas(aName string, a schemaDesc, bName string, b schemaDesc) []string {
	var diff []string
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		av, aok := a[k]
		bv, bok := b[k]
		switch {
		case !aok:
			diff = append(diff, fmt.Sprintf("%s: only in %s: %s", k, bName, bv))
		case !bok:
			diff = append(diff, fmt.Sprintf("%s: only in %s: %s", k, aName, av))
		case av != bv:
			diff = append(diff, fmt.Sprintf("%s: %s has %s, %s has %s", k, aName, av, bName, bv))
		}
	}
	return diff
}

func requireSameSchema(t *testing.T, aName string, a schemaDesc, bName string, b schemaDesc) {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		t.Fatalf("empty schema description: %s %d entries, %s %d", aName, len(a), bName, len(b))
	}
	if diff := diffSchemas(aName, a, bName, b); len(diff) > 0 {
		t.Fatalf("schemas differ (%d entries):\n\t%s", len(diff), strings.Join(diff, "\n\t"))
	}
}

// TestSchemaSQLiteMatchesMySQL creates the schema on both backends from
// its one source and compares them table by table, column by column (type
// class, nullability, default, auto increment), primary key and index by
// index (name, columns, uniqueness).
func TestSchemaSQLiteMatchesMySQL(t *testing.T) {
	lite := openStore(t, sqliteTestConfig(t)).(*sqlStore)
	my := openStore(t, mysqlTestConfig(t)).(*sqlStore)
	ld, md := sqliteSchemaDesc(t, lite.r), mysqlSchemaDesc(t, my.r)
	requireSameSchema(t, "sqlite", ld, "mysql", md)
	t.Logf("%d tables, columns, keys and indexes agree", len(ld))
	// Every table of the source is there (a step that created nothing on
	// both sides would compare equal).
	for _, tb := range []string{"agents", "agent_labels", "tasks", "results", "outputs", "audit", "metrics", "usage_history", "agent_secrets", "journal_acks", "api_tokens"} {
		if ld[tb] != "table" {
			t.Errorf("table %s missing", tb)
		}
	}
	if got := ld["audit.id"]; got != "integer NOT NULL DEFAULT none AUTO_INCREMENT" {
		t.Errorf("audit.id is %q", got)
	}
}

// TestSchemaDiffReports makes sure the comparison sees each kind of
// difference.
func TestSchemaDiffReports(t *testing.T) {
	a := schemaDesc{"t": "table", "t.c": "text NOT NULL DEFAULT ''", "t index i": "(c)", "t primary key": "id"}
	for _, tc := range []struct {
		name string
		edit func(schemaDesc)
		want string
	}{
		{"default", func(d schemaDesc) { d["t.c"] = "text NOT NULL DEFAULT none" }, "t.c: a has text NOT NULL DEFAULT '', b has text NOT NULL DEFAULT none"},
		{"nullability", func(d schemaDesc) { d["t.c"] = "text NULL DEFAULT ''" }, "t.c: a has text NOT NULL"},
		{"type", func(d schemaDesc) { d["t.c"] = "blob NOT NULL DEFAULT ''" }, "b has blob"},
		{"missing column", func(d schemaDesc) { delete(d, "t.c") }, "t.c: only in a"},
		{"extra index", func(d schemaDesc) { d["t index j"] = "(c)" }, "t index j: only in b"},
		{"uniqueness", func(d schemaDesc) { d["t index i"] = "UNIQUE (c)" }, "b has UNIQUE (c)"},
		{"index columns", func(d schemaDesc) { d["t index i"] = "(c, d)" }, "b has (c, d)"},
		{"primary key", func(d schemaDesc) { d["t primary key"] = "id, c" }, "t primary key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := maps.Clone(a)
			tc.edit(b)
			diff := diffSchemas("a", a, "b", b)
			if len(diff) != 1 || !strings.Contains(diff[0], tc.want) {
				t.Fatalf("diff %q, want one line with %q", diff, tc.want)
			}
		})
	}
	if diff := diffSchemas("a", a, "b", maps.Clone(a)); len(diff) != 0 {
		t.Fatalf("equal schemas differ: %q", diff)
	}
}
