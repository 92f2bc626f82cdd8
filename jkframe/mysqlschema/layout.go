package mysqlschema

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrLayout reports an fs.FS whose files do not follow the layout described
// in the package documentation. Migrate checks the whole layout before it
// touches the database.
var ErrLayout = errors.New("mysqlschema: bad layout")

// Names of the bookkeeping tables; no managed table may use them.
const (
	versionsTable = "schema_versions"
	logTable      = "schema_log"
)

var tableNameRE = regexp.MustCompile(`^[A-Za-z0-9_$]{1,64}$`)

// table is the validated set of files of one table.
type table struct {
	name   string
	latest sqlFile         // schema/latest.sql
	schema map[int]sqlFile // schema/v<N>.sql
	data   map[int]sqlFile // data/v<N>.sql
	newest int             // highest version; 1 when there are no schema/v files
}

// sqlFile is a file split into statements.
type sqlFile struct {
	path  string // inside the fs.FS, e.g. "users/schema/v2.sql"
	stmts []statement
}

// readLayout reads and validates every table of fsys and splits every file,
// so that no problem is found halfway through a migration. All problems are
// reported at once, each wrapped in ErrLayout or ErrSyntax.
func readLayout(fsys fs.FS) ([]*table, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("%w: read root: %w", ErrLayout, err)
	}
	var (
		tables []*table
		errs   []error
	)
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrLayout}, args...)...))
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() {
			if strings.HasSuffix(name, ".sql") {
				bad("%s: SQL file outside a table directory (want <table>/schema/… or <table>/data/…)", name)
			}
			continue
		}
		if strings.HasPrefix(name, ".") {
			continue
		}
		switch {
		case !tableNameRE.MatchString(name):
			bad("%s: table name must be 1-64 letters, digits, _ or $", name)
			continue
		case name == versionsTable || name == logTable:
			bad("%s: name reserved for the bookkeeping of mysqlschema", name)
			continue
		}
		t, tErrs := readTable(fsys, name)
		errs = append(errs, tErrs...)
		if t != nil {
			tables = append(tables, t)
		}
	}
	if len(tables) == 0 && len(errs) == 0 {
		bad("no table directories found (is the fs.FS rooted at the directory that holds <table>/schema/latest.sql? see fs.Sub)")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return tables, nil
}

func readTable(fsys fs.FS, name string) (*table, []error) {
	t := &table{name: name, schema: map[int]sqlFile{}, data: map[int]sqlFile{}}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrLayout}, args...)...))
	}
	entries, err := fs.ReadDir(fsys, name)
	if err != nil {
		bad("%s: %v", name, err)
		return nil, errs
	}
	for _, e := range entries {
		p := path.Join(name, e.Name())
		if !e.IsDir() {
			if strings.HasSuffix(e.Name(), ".sql") {
				bad("%s: SQL file outside schema/ or data/", p)
			}
			continue
		}
		if e.Name() != "schema" && e.Name() != "data" {
			if !strings.HasPrefix(e.Name(), ".") {
				bad("%s: unexpected directory (want schema/ and data/)", p)
			}
			continue
		}
		files, err := fs.ReadDir(fsys, p)
		if err != nil {
			bad("%s: %v", p, err)
			continue
		}
		for _, f := range files {
			fp := path.Join(p, f.Name())
			if f.IsDir() {
				bad("%s: unexpected directory", fp)
				continue
			}
			if !strings.HasSuffix(f.Name(), ".sql") {
				continue // README and the like
			}
			if e.Name() == "schema" && f.Name() == "latest.sql" {
				sf, err := readSQL(fsys, fp)
				if err != nil {
					errs = append(errs, err)
				}
				t.latest = sf
				continue
			}
			n, ok := parseVersionName(f.Name())
			if !ok {
				want := "v<N>.sql"
				if e.Name() == "schema" {
					want = "latest.sql or v<N>.sql"
				}
				bad("%s: unexpected file name (want %s, N a positive number without leading zeros)", fp, want)
				continue
			}
			sf, err := readSQL(fsys, fp)
			if err != nil {
				errs = append(errs, err)
			}
			if e.Name() == "schema" {
				t.schema[n] = sf
			} else {
				t.data[n] = sf
			}
		}
	}
	if t.latest.path == "" {
		bad("%s/schema/latest.sql missing (it creates the table at its newest version)", name)
	}
	versions := slices.Sorted(maps.Keys(t.schema))
	t.newest = 1
	if len(versions) > 0 {
		t.newest = max(1, versions[len(versions)-1])
	}
	// v1.sql is optional (latest.sql creates the table); v2…newest must all be there.
	var missing []int
	for v := 2; v <= t.newest && len(missing) < 5; v++ {
		if _, ok := t.schema[v]; !ok {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		bad("%s/schema: %s missing: versions must not have gaps (found %s)", name, listVersions(missing), listVersions(versions))
	}
	for _, v := range slices.Sorted(maps.Keys(t.data)) {
		if v > t.newest {
			bad("%s/data/v%d.sql has no schema version %d (newest is %d)", name, v, v, t.newest)
		}
	}
	return t, errs
}

func readSQL(fsys fs.FS, p string) (sqlFile, error) {
	b, err := fs.ReadFile(fsys, p)
	if err != nil {
		return sqlFile{path: p}, fmt.Errorf("%w: %s: %w", ErrLayout, p, err)
	}
	stmts, err := splitStatements(string(b))
	if err != nil {
		return sqlFile{path: p}, fmt.Errorf("%s: %w", p, err)
	}
	return sqlFile{path: p, stmts: stmts}, nil
}

// parseVersionName parses "v<N>.sql" with N >= 1 and no leading zeros.
func parseVersionName(name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, "v")
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, ".sql")
	if !ok || digits == "" || digits[0] == '0' || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n > 1<<30 {
		return 0, false
	}
	return n, true
}

func listVersions(vs []int) string {
	if len(vs) == 0 {
		return "none"
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = "v" + strconv.Itoa(v)
	}
	return strings.Join(parts, ", ")
}
