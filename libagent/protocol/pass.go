package protocol

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// PassKey is the v1 fixed key and IV used to obfuscate sudo/su passwords in
// the "$1$" form (AES-256-CBC, PKCS#7 padding, fixed IV). The values are not
// part of our spec: fill them from the deployed agents' configuration. It is
// obfuscation, not security.
type PassKey struct {
	Key [32]byte
	IV  [16]byte
}

// ErrPass: a pass value that cannot be decoded.
var ErrPass = errors.New("bad password encoding")

// ErrNoPassKey: a "$1$" pass arrived but no PassKey was configured.
var ErrNoPassKey = errors.New("password uses the $1$ form but no v1 key is configured")

// EncodePass returns the "$0$" (plain) form of a password. Our servers send
// this form: "$1$" adds nothing but the appearance of security.
func EncodePass(plain string) string { return "$0$" + plain }

// EncodePassV1 returns the "$1$" form, for tests and for talking to v1
// agents that require it.
func EncodePassV1(plain string, key *PassKey) (string, error) {
	if key == nil {
		return "", ErrNoPassKey
	}
	blk, err := aes.NewCipher(key.Key[:])
	if err != nil {
		return "", fmt.Errorf("pass: %w", err)
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	buf := append([]byte(plain), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(blk, key.IV[:]).CryptBlocks(buf, buf)
	return "$1$" + base64.StdEncoding.EncodeToString(buf), nil
}

// DecodePass returns the password in an exec or upload "pass" value. The
// empty string decodes to "". key may be nil when no v1 key is configured;
// then "$1$" values fail with ErrNoPassKey.
func DecodePass(s string, key *PassKey) (string, error) {
	switch {
	case s == "":
		return "", nil
	case strings.HasPrefix(s, "$0$"):
		return s[3:], nil
	case strings.HasPrefix(s, "$1$"):
		if key == nil {
			return "", ErrNoPassKey
		}
		raw, err := base64.StdEncoding.DecodeString(s[3:])
		if err != nil {
			return "", fmt.Errorf("%w: $1$: %w", ErrPass, err)
		}
		if len(raw) == 0 || len(raw)%aes.BlockSize != 0 {
			return "", fmt.Errorf("%w: $1$: ciphertext length %d is not a positive multiple of %d", ErrPass, len(raw), aes.BlockSize)
		}
		blk, err := aes.NewCipher(key.Key[:])
		if err != nil {
			return "", fmt.Errorf("pass: %w", err)
		}
		cipher.NewCBCDecrypter(blk, key.IV[:]).CryptBlocks(raw, raw)
		pad := int(raw[len(raw)-1])
		if pad == 0 || pad > aes.BlockSize || !bytes.Equal(raw[len(raw)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
			return "", fmt.Errorf("%w: $1$: bad padding (wrong key?)", ErrPass)
		}
		return string(raw[:len(raw)-pad]), nil
	}
	return "", fmt.Errorf("%w: want a $0$ or $1$ prefix", ErrPass)
}
