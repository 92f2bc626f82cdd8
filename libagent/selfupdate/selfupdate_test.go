package selfupdate

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func keyPair(t *testing.T) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	priv, pub, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "release.key")
	if err := os.WriteFile(path, []byte(priv), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := ReadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k, p
}

func TestSignVerify(t *testing.T) {
	k, pub := keyPair(t)
	_, other := keyPair(t)
	sum := sha256.Sum256([]byte("binary"))
	sig := Sign(k, sum[:])
	if err := Verify([]ed25519.PublicKey{other, pub}, sum[:], sig); err != nil {
		t.Fatalf("verify with the right key among others: %v", err)
	}
	bad := sha256.Sum256([]byte("another binary"))
	for _, c := range []struct {
		name string
		keys []ed25519.PublicKey
		sum  []byte
		sig  string
		want error
	}{
		{"other key", []ed25519.PublicKey{other}, sum[:], sig, ErrBadSignature},
		{"other file", []ed25519.PublicKey{pub}, bad[:], sig, ErrBadSignature},
		{"not base64", []ed25519.PublicKey{pub}, sum[:], "%%%", ErrBadSignature},
		{"short", []ed25519.PublicKey{pub}, sum[:], "AAAA", ErrBadSignature},
		{"no key", nil, sum[:], sig, ErrNoKey},
	} {
		if err := Verify(c.keys, c.sum, c.sig); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	for _, s := range []string{"", "abc", strings.Repeat("A", 40)} {
		if _, err := ParsePublicKey(s); err == nil {
			t.Errorf("ParsePublicKey(%q): no error", s)
		}
	}
}

// exeDir makes a fake installed binary and returns its path.
func exeDir(t *testing.T, content string) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(exe, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

func sumHex(b []byte) (string, []byte) {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), s[:]
}

func TestStageRefuses(t *testing.T) {
	k, pub := keyPair(t)
	other, _ := keyPair(t)
	body := []byte("new binary v2")
	sum, raw := sumHex(body)
	good := Sign(k, raw)
	feed := func(b []byte) func(io.Writer) error {
		return func(w io.Writer) error { _, err := w.Write(b); return err }
	}
	pol := Policy{Keys: []ed25519.PublicKey{pub}}
	for _, c := range []struct {
		name string
		want Want
		pol  Policy
		body []byte
		err  error
	}{
		{"unsigned", Want{SHA256: sum, Size: int64(len(body))}, pol, body, ErrUnsigned},
		{"wrong key", Want{SHA256: sum, Size: int64(len(body)), Sig: Sign(other, raw)}, pol, body, ErrBadSignature},
		{"no key configured", Want{SHA256: sum, Size: int64(len(body)), Sig: good}, Policy{}, body, ErrNoKey},
		{"bytes differ", Want{SHA256: sum, Size: int64(len(body)), Sig: good}, pol, []byte("new binary v3"), ErrChecksum},
		{"longer", Want{SHA256: sum, Size: int64(len(body)), Sig: good}, pol, append(body, 'x'), ErrChecksum},
		{"shorter", Want{SHA256: sum, Size: int64(len(body)), Sig: good}, pol, body[1:], ErrChecksum},
		{"bad sha", Want{SHA256: "xyz", Size: 3, Sig: good}, pol, body, ErrChecksum},
	} {
		exe := exeDir(t, "v1")
		_, err := Stage(exe, c.want, c.pol, feed(c.body))
		if !errors.Is(err, c.err) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.err)
		}
		if _, serr := os.Stat(StagedPath(exe)); serr == nil {
			t.Errorf("%s: staged file left behind", c.name)
		}
		if b, _ := os.ReadFile(exe); string(b) != "v1" {
			t.Errorf("%s: exe changed to %q", c.name, b)
		}
	}
	// Unsigned, allowed by the policy.
	exe := exeDir(t, "v1")
	if _, err := Stage(exe, Want{SHA256: sum, Size: int64(len(body))}, Policy{AllowUnsigned: true}, feed(body)); err != nil {
		t.Errorf("allow_unsigned: %v", err)
	}
}

func TestStageSwapRollback(t *testing.T) {
	k, pub := keyPair(t)
	body := bytes.Repeat([]byte("v2"), 300000) // more than one copy buffer
	sum, raw := sumHex(body)
	exe := exeDir(t, "v1")
	staged, err := Stage(exe, Want{SHA256: sum, Size: int64(len(body)), Sig: Sign(k, raw)}, Policy{Keys: []ed25519.PublicKey{pub}},
		func(w io.Writer) error { _, err := io.Copy(w, bytes.NewReader(body)); return err })
	if err != nil {
		t.Fatal(err)
	}
	prev, err := Swap(exe, staged)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(exe); !bytes.Equal(b, body) {
		t.Fatal("exe is not the new binary")
	}
	if b, _ := os.ReadFile(prev); string(b) != "v1" {
		t.Fatalf("prev = %q", b)
	}
	if err := Rollback(exe, prev); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(exe); string(b) != "v1" {
		t.Fatalf("after rollback exe = %q", b)
	}
}

func TestWatchConfirmed(t *testing.T) {
	exe := exeDir(t, "v2")
	base := filepath.Join(filepath.Dir(exe), "agent")
	if err := os.WriteFile(PrevPath(exe), []byte("v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := Plan{Exe: exe, Prev: PrevPath(exe), Deadline: time.Now().Add(time.Hour), Restart: RestartExit, From: "1.0"}
	if err := WritePlan(base, p); err != nil {
		t.Fatal(err)
	}
	if _, ok := Pending(base, 1<<22+1); !ok {
		t.Fatal("no pending plan")
	}
	if err := Confirm(base); err != nil {
		t.Fatal(err)
	}
	if err := Watch(context.Background(), base, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("Watch after confirm: %v", err)
	}
	if b, _ := os.ReadFile(exe); string(b) != "v2" {
		t.Fatalf("exe = %q", b)
	}
	if _, rolledBack, ok := Outcome(base); !ok || rolledBack {
		t.Fatalf("Outcome: ok %v rolled back %v", ok, rolledBack)
	}
}

func TestWatchRollsBack(t *testing.T) {
	exe := exeDir(t, "v2")
	base := filepath.Join(filepath.Dir(exe), "agent")
	if err := os.WriteFile(PrevPath(exe), []byte("v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := Plan{Exe: exe, Prev: PrevPath(exe), Deadline: time.Now().Add(300 * time.Millisecond), Restart: RestartExit, From: "1.0", Stay: time.Second}
	if err := WritePlan(base, p); err != nil {
		t.Fatal(err)
	}
	err := Watch(context.Background(), base, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "rolled back to 1.0") {
		t.Fatalf("Watch: %v", err)
	}
	if b, _ := os.ReadFile(exe); string(b) != "v1" {
		t.Fatalf("exe = %q after rollback", b)
	}
	if err := Confirm(base); !errors.Is(err, ErrClaimed) {
		t.Fatalf("Confirm after the rollback: %v, want ErrClaimed", err)
	}
	got, rolledBack, ok := Outcome(base)
	if !ok || !rolledBack || !strings.Contains(got.Reason, "did not connect") {
		t.Fatalf("Outcome: %+v %v %v", got, rolledBack, ok)
	}
}

// FuzzVerify: a signature and a public key from outside never panic and
// never verify by accident.
func FuzzVerify(f *testing.F) {
	f.Add("", "")
	f.Add("AAAA", "cyXjVwRcG2Bgl++90k/jkKmhCtk8clSIrt3tXa45hnc=")
	f.Add(strings.Repeat("A", 86)+"==", "cyXjVwRcG2Bgl++90k/jkKmhCtk8clSIrt3tXa45hnc=")
	sum := sha256.Sum256([]byte("binary"))
	f.Fuzz(func(t *testing.T, sig, pub string) {
		k, err := ParsePublicKey(pub)
		if err != nil {
			return
		}
		if Verify([]ed25519.PublicKey{k}, sum[:], sig) == nil {
			t.Fatalf("signature %q verified with key %q", sig, pub)
		}
	})
}
