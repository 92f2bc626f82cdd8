// Command release-sign makes and checks the release signatures agents
// verify before they swap in a new binary (docs/upgrade.md).
//
//	release-sign keygen <keyfile>          new key pair: <keyfile> (private, 0600) and <keyfile>.pub
//	release-sign sign <keyfile> <file>...  write <file>.sig for each file
//	release-sign verify <pubkey> <file>... check each <file>.sig (pubkey: base64 or a .pub file)
//
// `make release` runs "sign" when RELEASE_SIGNING_KEY names a key file;
// the public key goes into the agents' basic.upgrade.public_key.
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/agentfleet/libagent/selfupdate"
)

const usage = `usage:
  release-sign keygen <keyfile>
  release-sign sign <keyfile> <file>...
  release-sign verify <pubkey|file.pub> <file>...
`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "release-sign:", err)
		os.Exit(1)
	}
}

// usageError is msg followed by the usage text.
func usageError(msg string) error {
	return fmt.Errorf("%s\n%s", msg, strings.TrimRight(usage, "\n"))
}

func run(args []string, stdout io.Writer) error {
	if len(args) < 2 {
		return usageError("missing arguments")
	}
	switch args[0] {
	case "keygen":
		if len(args) != 2 {
			return usageError("wrong number of arguments")
		}
		return keygen(args[1], stdout)
	case "sign":
		if len(args) < 3 {
			return usageError("wrong number of arguments")
		}
		key, err := selfupdate.ReadPrivateKey(args[1])
		if err != nil {
			return err
		}
		for _, f := range args[2:] {
			if err := sign(key, f); err != nil {
				return err
			}
		}
		return nil
	case "verify":
		if len(args) < 3 {
			return usageError("wrong number of arguments")
		}
		pub, err := readPublic(args[1])
		if err != nil {
			return err
		}
		for _, f := range args[2:] {
			sum, err := fileSum(f)
			if err != nil {
				return err
			}
			sig, err := os.ReadFile(f + ".sig")
			if err != nil {
				return err
			}
			if err := selfupdate.Verify([]ed25519.PublicKey{pub}, sum, string(sig)); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			fmt.Fprintf(stdout, "%s: signature OK\n", f)
		}
		return nil
	}
	return usageError(fmt.Sprintf("unknown command %q", args[0]))
}

func keygen(path string, stdout io.Writer) error {
	priv, pub, err := selfupdate.GenerateKey()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("keygen: %w (an existing key is never overwritten)", err)
	}
	if _, err := f.WriteString(priv); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(path+".pub", []byte(pub+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "private key: %s (keep it secret; RELEASE_SIGNING_KEY=%s make release)\npublic key:  %s (basic.upgrade.public_key = %s)\n", path, path, path+".pub", pub)
	return nil
}

func sign(key ed25519.PrivateKey, path string) error {
	sum, err := fileSum(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path+".sig", []byte(selfupdate.Sign(key, sum)), 0o644)
}

func fileSum(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h.Sum(nil), nil
}

func readPublic(s string) (ed25519.PublicKey, error) {
	if b, err := os.ReadFile(s); err == nil {
		s = strings.TrimSpace(string(b))
	}
	return selfupdate.ParsePublicKey(s)
}
