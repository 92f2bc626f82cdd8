// Package selfupdate is the agent side of self-update: the release
// signature (ed25519 over the file's sha256, made by `make release`), the
// staging of a new binary next to the running one (streamed to disk, sha256
// and signature checked before anything is swapped), the atomic swap that
// keeps the previous binary, and the watchdog that rolls back to it when
// the new binary does not confirm in time. docs/upgrade.md describes the
// whole mechanism; the runtime (package libagent) drives it.
package selfupdate

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Errors callers branch on.
var (
	// ErrUnsigned: no signature, and unsigned binaries are not allowed.
	ErrUnsigned = errors.New("binary is not signed")
	// ErrBadSignature: the signature does not verify with any configured key.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrChecksum: the bytes received do not have the announced sha256 or size.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrNoKey: a signature is required but no public key is configured.
	ErrNoKey = errors.New("no upgrade.public_key configured")
)

// sigContext separates release signatures from any other use of the key.
const sigContext = "agentfleet release v1\x00"

// message is what is signed: the context and the file's sha256.
func message(sum []byte) []byte { return append([]byte(sigContext), sum...) }

// Sign returns the release signature of a file whose sha256 is sum, as
// the text of its .sig file (base64, one line).
func Sign(key ed25519.PrivateKey, sum []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, message(sum))) + "\n"
}

// Verify checks the .sig text sig of a file whose sha256 is sum against
// keys (any may match).
func Verify(keys []ed25519.PublicKey, sum []byte, sig string) error {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil || len(raw) != ed25519.SignatureSize {
		return fmt.Errorf("%w: not a base64 ed25519 signature", ErrBadSignature)
	}
	if len(keys) == 0 {
		return ErrNoKey
	}
	for _, k := range keys {
		if ed25519.Verify(k, message(sum), raw) {
			return nil
		}
	}
	return ErrBadSignature
}

// ParsePublicKey reads a public key as written by GenerateKey (base64 of
// the 32 key bytes).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q: want the base64 of %d bytes", s, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// GenerateKey returns a new key pair as text: the private key file's
// content (base64 of the 32-byte seed) and the public key (base64).
func GenerateKey() (private, public string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	return base64.StdEncoding.EncodeToString(priv.Seed()) + "\n", base64.StdEncoding.EncodeToString(pub), nil
}

// ReadPrivateKey reads a private key file written from GenerateKey.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s: want the base64 of a %d-byte ed25519 seed", path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
