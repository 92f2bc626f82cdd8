package pkgkind

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestOf(t *testing.T) {
	for name, want := range map[string]Kind{
		"a.deb": Deb, "A.RPM": RPM, "x.tar": Tar, "x.tar.gz": TarGz, "x.tgz": TarGz,
		"x.tar.bz2": TarBz2, "x.tbz2": TarBz2, "x.tbz": TarBz2, "x.zip": Zip, "x.msi": MSI,
		"setup.exe": Exe, `C:\dl\setup.EXE`: Exe, "https://h/p/app.deb": Deb,
		"exec-agent": "", "x.gz": "", "x.txt": "",
	} {
		got, ok := Of(name)
		if got != want || ok != (want != "") {
			t.Errorf("Of(%q) = %q %t, want %q", name, got, ok, want)
		}
		if _, err := KindOf(name); (err == nil) != (want != "") || err != nil && !errors.Is(err, ErrKind) {
			t.Errorf("KindOf(%q) = %v", name, err)
		}
	}
	if _, err := Parse("bin"); err == nil {
		t.Error("Parse(bin) accepted")
	}
	if k, err := Parse("TAR.GZ"); k != TarGz || err != nil {
		t.Errorf("Parse(TAR.GZ) = %q, %v", k, err)
	}
}

func TestMatch(t *testing.T) {
	ustar := make([]byte, HeadSize)
	copy(ustar[257:], "ustar")
	cases := []struct {
		kind Kind
		head []byte
		ok   bool
	}{
		{Deb, []byte("!<arch>\ndebian-binary   "), true},
		{Deb, []byte("!<arch>\nother"), false},
		{RPM, []byte{0xed, 0xab, 0xee, 0xdb, 3}, true},
		{TarGz, []byte{0x1f, 0x8b, 8}, true},
		{TarBz2, []byte("BZh91AY"), true},
		{Zip, []byte("PK\x03\x04"), true},
		{Zip, []byte("PK\x05\x06"), true},
		{MSI, []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}, true},
		{Exe, []byte("MZ\x90"), true},
		{Tar, ustar, true},
		{Tar, make([]byte, HeadSize), true},
		{Tar, make([]byte, 100), false},
		{Bin, []byte("\x7fELF\x02"), true},
		{Bin, []byte("MZ"), true},
		{Bin, []byte{0xcf, 0xfa, 0xed, 0xfe}, true},
		{Bin, []byte("#!/bin/sh"), false},
		{Kind("nope"), []byte("MZ"), false},
	}
	for _, c := range cases {
		if got := Match(c.head, c.kind); got != c.ok {
			t.Errorf("Match(%q, %s) = %t", c.head, c.kind, got)
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("PK\x03\x04rest"), 0o600)
	if err := CheckFile(p, Zip); err != nil {
		t.Error(err)
	}
	if err := CheckFile(p, Deb); !errors.Is(err, ErrKind) {
		t.Errorf("CheckFile(zip as deb) = %v", err)
	}
	if h, _ := Head(bytes.NewReader(make([]byte, 2000))); len(h) != HeadSize {
		t.Errorf("Head = %d bytes", len(h))
	}
}

func TestClip(t *testing.T) {
	if got := Clip("héllo", 2); got != "h…" {
		t.Errorf("Clip = %q", got)
	}
	if got := Clip("abc", 3); got != "abc" {
		t.Errorf("Clip = %q", got)
	}
}
