package utils

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/google/uuid"
)

// RandomHex returns 2×nBytes lower-case hex digits from crypto/rand, or ""
// when nBytes ≤ 0. It is meant for secrets and tokens.
func RandomHex(nBytes int) string {
	if nBytes <= 0 {
		return ""
	}
	b := make([]byte, nBytes)
	// crypto/rand.Read never returns an error; it crashes the program when
	// the system source fails (Go ≥ 1.24).
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewUUID returns a random (version 4) UUID in its canonical 36-character
// form.
func NewUUID() string { return uuid.NewString() }
