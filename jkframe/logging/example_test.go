package logging_test

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/agentfleet/jkframe/logging"
)

func ExampleNew() {
	dir, _ := os.MkdirTemp("", "logs")
	defer os.RemoveAll(dir)

	log, err := logging.New(logging.Options{
		Level:   slog.LevelInfo,
		Targets: []string{"file"},
		Dir:     dir,
		Name:    "agent",
		MaxSize: 10 << 20, // rotate at 10 MiB
		Rotate:  7,        // keep 7 rotated files
		Daily:   true,     // and rotate at midnight
		MaxDays: 30,       // deleting rotated files older than 30 days
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()

	log.Info("agent started", "version", "1.2.3")
	log.Debug("not written at info level")
	log.SetLevel(slog.LevelDebug) // e.g. from an admin request
	log.Debug("written now")

	files, _ := log.Files()
	for _, f := range files {
		fmt.Println(f.Name, f.Size > 0)
	}
	// Output: agent.log true
}
