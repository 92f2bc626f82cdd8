package files

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// pathTests are the cases of TestCleanPath with Windows paths: drive
// letters, both separators, UNC.
var pathTests = []struct {
	in, want, err string
}{
	{`C:\Windows\System32`, `C:\Windows\System32`, ""},
	{`C:\`, `C:\`, ""},
	{`C:/Users/x/`, `C:\Users\x`, ""},
	{`c:\a\\b\`, `c:\a\b`, ""},
	{`\\server\share\dir`, `\\server\share\dir`, ""},
	{`C:\a\..b\c..`, `C:\a\..b\c..`, ""},
	{"", "", `invalid path "": empty`},
	{`C:`, "", `invalid path "C:": not absolute`},
	{`C:x\y`, "", `invalid path "C:x\\y": not absolute`},
	{`\Windows`, "", `invalid path "\\Windows": not absolute`},
	{`Windows\System32`, "", `invalid path "Windows\\System32": not absolute`},
	{`C:\a\..\b`, "", `invalid path "C:\\a\\..\\b": has a . or .. element`},
	{`C:/a/../b`, "", `invalid path "C:/a/../b": has a . or .. element`},
	{`C:\a\.\b`, "", `invalid path "C:\\a\\.\\b": has a . or .. element`},
	{"C:\\a\x00b", "", `invalid path "C:\\a\x00b": contains NUL`},
}

// A valid file name stays one element inside its directory on Windows too
// (FuzzName checks the same under a Unix base).
func TestValidNameStaysInside(t *testing.T) {
	for _, tt := range nameTests {
		if ValidName(tt.name) != nil {
			continue
		}
		if p, err := CleanPath(`C:\base\` + tt.name); err != nil || p != `C:\base\`+tt.name {
			t.Errorf(`C:\base\%q cleans to %q, %v`, tt.name, p, err)
		}
	}
}

var driveName = regexp.MustCompile(`^[A-Z]:\\$`)

// "/" (and "\") list the drives from GetLogicalDrives, as directories.
func TestListDrives(t *testing.T) {
	fs := New(Options{})
	for _, root := range []string{"/", `\`} {
		list, err := fs.List(root)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, d := range list {
			names = append(names, d.Name)
			if !driveName.MatchString(d.Name) || !d.Mod.IsDir() {
				t.Errorf("drive %+v: want a name like C:\\ and a directory mode", d)
			}
		}
		if !slices.Contains(names, `C:\`) {
			t.Errorf("List(%q) = %v, want C:\\ among them", root, names)
		}
	}
	if isDrivesRoot(`C:\`) || isDrivesRoot("") {
		t.Error("a drive or the empty path taken for the drive list")
	}
}

// A listing names the owner and group from the file's security descriptor.
func TestListOwner(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := New(Options{}).List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "a.txt" || list[0].Size != 5 || !list[1].Mod.IsDir() {
		t.Fatalf("list %+v", list)
	}
	for _, e := range list {
		if e.User == "" {
			t.Errorf("%s: no owner", e.Name)
		}
	}
}

// An upload replaces an existing file by rename (MoveFileEx), leaves no
// temporary file, and refuses an owner before writing anything.
func TestUploadWindows(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := New(Options{})
	got, err := fs.Upload(context.Background(), UploadSpec{Dir: dir, Name: "a.txt"}, strings.NewReader("new"))
	if err != nil || got != target {
		t.Fatalf("upload: %q %v", got, err)
	}
	if b, _ := os.ReadFile(target); string(b) != "new" {
		t.Fatalf("content %q after replacing", b)
	}

	_, err = fs.Upload(context.Background(), UploadSpec{Dir: dir, Name: "b.txt", OwnUser: "Administrator"}, strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "not supported on Windows") {
		t.Fatalf("owner on Windows: %v, want not supported", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file written despite the refused owner: %v", err)
	}

	// Mode without the write bits sets the read-only attribute.
	if _, err := fs.Upload(context.Background(), UploadSpec{Dir: dir, Name: "ro.txt", Mode: 0o444}, strings.NewReader("ro")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "ro.txt")); err != nil || fi.Mode().Perm()&0o200 != 0 {
		t.Fatalf("mode 0444: %v %v, want read-only", fi.Mode(), err)
	}

	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".part") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

// Replacing a file that an earlier upload made read-only.
func TestUploadOverReadOnly(t *testing.T) {
	dir := t.TempDir()
	fs := New(Options{})
	if _, err := fs.Upload(context.Background(), UploadSpec{Dir: dir, Name: "ro.txt", Mode: 0o444}, strings.NewReader("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Upload(context.Background(), UploadSpec{Dir: dir, Name: "ro.txt", Mode: 0o444}, strings.NewReader("two")); err != nil {
		t.Fatalf("second upload over the read-only file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ro.txt")); string(b) != "two" {
		t.Fatalf("content %q", b)
	}
}
