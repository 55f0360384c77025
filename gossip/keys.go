package gossip

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// Gossip keys (--gossip-key-file): AES keys for memberlist's encryption,
// in a file of one base64 key per line, the first one primary.

// MaxKeys bounds the number of gossip keys: every received message is
// tried against each key in turn, and a rotation needs two.
const MaxKeys = 4

// ErrInvalidKeyFile is wrapped by ParseKeyFile's and LoadKeyFile's
// errors about the file's contents.
var ErrInvalidKeyFile = errors.New("gossip: invalid gossip key file")

// checkKey checks an AES key's length.
func checkKey(k []byte) error {
	if err := memberlist.ValidateKey(k); err != nil {
		return fmt.Errorf("%d bytes, want 16, 24 or 32 (AES-128, AES-192, AES-256)", len(k))
	}
	return nil
}

// ParseKeyFile parses a gossip key file: one key per line, in standard
// base64 (as GenerateKey makes them), the first one primary (it
// encrypts; every key decrypts). Blank lines and lines starting with #
// are ignored. It returns 1 to MaxKeys distinct keys of 16, 24 or 32
// bytes. Its errors wrap ErrInvalidKeyFile and name the line, never its
// contents.
func ParseKeyFile(data []byte) ([][]byte, error) { return parseKeyFile(data, "") }

// LoadKeyFile reads and parses a gossip key file (see ParseKeyFile).
func LoadKeyFile(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip: read the gossip key file: %w", err)
	}
	return parseKeyFile(data, path)
}

func parseKeyFile(data []byte, name string) ([][]byte, error) {
	where := func(line int) string {
		if name == "" {
			return fmt.Sprintf("line %d", line)
		}
		return fmt.Sprintf("%s:%d", name, line)
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // a byte order mark some editors write
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		s := strings.TrimSpace(line)
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if len(keys) == MaxKeys {
			return nil, fmt.Errorf("%w: %s: more than %d keys", ErrInvalidKeyFile, where(n), MaxKeys)
		}
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			// The error names a byte offset only; the line is not quoted.
			return nil, fmt.Errorf("%w: %s: not a key in standard base64 (%w)", ErrInvalidKeyFile, where(n), err)
		}
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("%w: %s: the key is %w", ErrInvalidKeyFile, where(n), err)
		}
		if j := slices.IndexFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }); j >= 0 {
			return nil, fmt.Errorf("%w: %s: the same key as the file's key %d", ErrInvalidKeyFile, where(n), j+1)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		file := "the file"
		if name != "" {
			file = name
		}
		return nil, fmt.Errorf("%w: no key in %s", ErrInvalidKeyFile, file)
	}
	return keys, nil
}

// GenerateKey returns a new random 32-byte (AES-256) gossip key, in
// standard base64: a line of a key file.
func GenerateKey() (string, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("gossip: generate a gossip key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k), nil
}
