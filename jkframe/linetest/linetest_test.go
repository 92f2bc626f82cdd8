package linetest

import (
	"os"
	"strings"
	"testing"
)

func TestWriterRotations(t *testing.T) {
	path := t.TempDir() + "/app.log"
	w := &Writer{Path: path, Keep: 2}
	w.Open(t)
	w.Write(t, 10)
	w.RotateRename(t) // 10 + 5 late lines in app.log.1
	w.Write(t, 3)
	w.RotateCopyTruncate(t) // app.log.1 → .2; 3 lines copied to .1
	w.Write(t, 2)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.N != 20 || w.Size != 2*101 {
		t.Fatalf("N %d Size %d, want 20 and %d", w.N, w.Size, 2*101)
	}
	bySource := map[string][]string{}
	for _, name := range []string{".2", ".1", ""} {
		b, err := os.ReadFile(path + name)
		if err != nil {
			t.Fatal(err)
		}
		bySource["app.log"] = append(bySource["app.log"], strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
	}
	if sum := Check(t, 20, bySource); len(sum) != 32 {
		t.Fatalf("sha256 of %d bytes", len(sum))
	}
	if i, ok := Parse(Line(123456789)); !ok || i != 123456789 || len(Line(0)) != 100 {
		t.Fatalf("Parse(Line(123456789)) = %d, %v; len(Line(0)) = %d", i, ok, len(Line(0)))
	}
}
