package mysqlschema_test

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"time"

	"github.com/agentfleet/jkframe/mysqlschema"
)

//go:embed testdata/v3
var schemaFiles embed.FS

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// A service migrates its tables at start-up from SQL files embedded in the
// binary. Several replicas may start at once: one migrates, the others wait
// for the lock and find nothing left to do.
func ExampleMigrate() {
	db, err := sql.Open("mysql", "app:secret@tcp(db.example.com:3306)/app?parseTime=true")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	sub, err := fs.Sub(schemaFiles, "testdata/v3")
	if err != nil {
		log.Fatal(err)
	}
	report, err := mysqlschema.Migrate(context.Background(), db, sub,
		mysqlschema.WithLogger(slog.Default()),
		mysqlschema.WithLockTimeout(2*time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range report.Tables {
		fmt.Printf("%s: version %d -> %d, %d files\n", t.Table, t.From, t.To, len(t.Files))
	}
}
