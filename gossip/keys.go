package gossip

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// Gossip encryption (Config.Keys, --gossip-key-file).
//
// With keys, memberlist encrypts every packet and stream it sends with
// AES-GCM under the primary key (Keys[0]) and accepts only what one of
// the keys decrypts: GossipVerifyIncoming and GossipVerifyOutgoing are
// both on, so a node with another key, or with none, gets nothing
// through — not a ping, not a join. Encryption happens in memberlist,
// above the transport, so it covers an injected Transport as well.
//
// Keys are rotated without a restart, with SetKeys on every node at each
// step (the node re-reads its key file on SIGHUP):
//
//  1. [old, new]: every node accepts the new key, still sends under the
//     old one;
//  2. [new, old]: every node sends under the new key, still accepts the
//     old one;
//  3. [new]: the old key is gone.
//
// Each step must have reached every node before the next one starts.
// Turning encryption on or off needs a restart of every node (an
// encrypted node and a plain one cannot talk at all), and SetKeys
// refuses it.

// MaxKeys bounds the number of gossip keys: every received message is
// tried against each key in turn, and a rotation needs two.
const MaxKeys = 4

// ErrInvalidKeyFile is wrapped by ParseKeyFile's and LoadKeyFile's
// errors about the file's contents.
var ErrInvalidKeyFile = errors.New("gossip: invalid gossip key file")

// ErrEncryptionChange is returned by SetKeys asked to turn gossip
// encryption on or off: that needs a restart.
var ErrEncryptionChange = errors.New("gossip: turning gossip encryption on or off needs a restart")

// ErrKeyMismatch is wrapped by Start's error when a node with no ring
// state and Config.NewCluster finds a cluster at a Join address that
// gossips under another key (or without encryption, or with it when
// this node has no key): it does not form a cluster of its own then.
var ErrKeyMismatch = errors.New("gossip: gossip key mismatch")

// checkKeys validates a list of gossip keys (none is valid: no
// encryption). Its errors wrap ErrInvalidConfig and name keys by their
// position, 1-based, never by their contents.
func checkKeys(keys [][]byte) error {
	if len(keys) > MaxKeys {
		return fmt.Errorf("%w: %d gossip keys, at most %d", ErrInvalidConfig, len(keys), MaxKeys)
	}
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return fmt.Errorf("%w: gossip key %d: %w", ErrInvalidConfig, i+1, err)
		}
		if j := slices.IndexFunc(keys[:i], func(o []byte) bool { return bytes.Equal(o, k) }); j >= 0 {
			return fmt.Errorf("%w: gossip key %d repeats key %d", ErrInvalidConfig, i+1, j+1)
		}
	}
	return nil
}

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

// keyID names a key in logs: the first 4 bytes of its SHA-256, in hex,
// which tell keys apart without revealing anything usable about them.
func keyID(k []byte) string {
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:4])
}

// cloneKeys deep-copies keys: memberlist keeps the slices it is given.
func cloneKeys(keys [][]byte) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = bytes.Clone(k)
	}
	return out
}

// SetKeys replaces the gossip keys of the running node: keys[0] becomes
// the key it encrypts with, and it decrypts with every key listed and
// no other. It takes effect at once, for every later packet and stream.
// Rotate by calling it on every node at each step of the rotation (see
// keys.go: [old, new], then [new, old], then [new]). The keys are
// validated as Config.Keys are (errors wrap ErrInvalidConfig); a list
// that would turn encryption on or off is refused with
// ErrEncryptionChange, as that needs a restart. SetKeys copies keys.
func (m *Membership) SetKeys(keys [][]byte) error {
	if err := checkKeys(keys); err != nil {
		return err
	}
	switch {
	case m.keyring == nil && len(keys) > 0:
		return fmt.Errorf("%w: this node gossips without encryption; restart every node with the key file", ErrEncryptionChange)
	case m.keyring != nil && len(keys) == 0:
		return fmt.Errorf("%w: this node's gossip is encrypted; restart every node without a key file to turn it off", ErrEncryptionChange)
	case len(keys) == 0:
		return nil
	}
	keys = cloneKeys(keys)
	m.keysMu.Lock()
	defer m.keysMu.Unlock()
	before := slices.Clone(m.keyring.GetKeys())
	added, removed := 0, 0
	for _, k := range keys {
		if !containsKey(before, k) {
			added++
		}
	}
	for _, k := range before {
		if !containsKey(keys, k) {
			removed++
		}
	}
	primaryChanged := !bytes.Equal(before[0], keys[0])
	if !primaryChanged && added == 0 && removed == 0 {
		m.log.Info("gossip: gossip keys unchanged", "keys", len(keys), "primary", keyID(keys[0]))
		return nil
	}
	if err := installKeys(m.keyring, keys); err != nil {
		return fmt.Errorf("gossip: install gossip keys: %w", err)
	}
	m.log.Info("gossip: gossip keys changed", "keys", len(keys), "primary", keyID(keys[0]),
		"primary_changed", primaryChanged, "added", added, "removed", removed)
	return nil
}

func containsKey(keys [][]byte, k []byte) bool {
	return slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) })
}

// keyring is what installKeys uses of *memberlist.Keyring.
type keyring interface {
	AddKey(key []byte) error
	UseKey(key []byte) error
	RemoveKey(key []byte) error
	GetKeys() [][]byte
}

var _ keyring = (*memberlist.Keyring)(nil)

// installKeys makes kr hold exactly keys (valid, distinct, not empty),
// keys[0] primary, while memberlist uses it.
//
// memberlist (v0.7.0) hands the keyring's slice to decrypting goroutines
// (GetKeys) and reads it after releasing the keyring's lock, and
// RemoveKey shifts the keys after the removed one down in that same
// slice: removing any key but the last would race with a decryption in
// progress. AddKey (it appends past the readers' length) and UseKey and
// RemoveKey (they install a new slice) write nothing a reader can see.
// So installKeys only ever removes the last key: it first brings the
// keys to remove to the end. UseKey moves a key to the front, so the
// keys to keep that sit behind a key to remove are made primary in turn,
// from the last one, and then keys[0] is. Those are keys this node
// already accepted and the new list keeps: messages sent in those
// microseconds are encrypted with a key the cluster is told to accept.
func installKeys(kr keyring, keys [][]byte) error {
	// A new primary is added first: it is made primary below.
	if err := kr.AddKey(keys[0]); err != nil {
		return err
	}
	cur := kr.GetKeys() // only read here; only SetKeys (holding keysMu) changes kr
	if first := slices.IndexFunc(cur, func(k []byte) bool { return !containsKey(keys, k) }); first >= 0 {
		var movers [][]byte
		for _, k := range cur[first+1:] {
			if containsKey(keys, k) && !bytes.Equal(k, keys[0]) {
				movers = append(movers, k)
			}
		}
		for i := len(movers) - 1; i >= 0; i-- {
			if err := kr.UseKey(movers[i]); err != nil {
				return err
			}
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		return err
	}
	// Now [keys to keep..., keys to remove...]: remove from the end.
	for {
		cur := kr.GetKeys()
		last := cur[len(cur)-1]
		if containsKey(keys, last) {
			break
		}
		if err := kr.RemoveKey(last); err != nil {
			return err
		}
	}
	for _, k := range keys[1:] {
		if err := kr.AddKey(k); err != nil {
			return err
		}
	}
	cur = kr.GetKeys()
	if len(cur) != len(keys) || !bytes.Equal(cur[0], keys[0]) || slices.ContainsFunc(cur, func(k []byte) bool { return !containsKey(keys, k) }) {
		return errors.New("the keyring does not hold the keys asked for") // a bug, here or in memberlist
	}
	return nil
}

// keyMismatch reports whether a memberlist join failed because the peer
// gossips under another key, or encrypted when this node does not, or
// not encrypted when this node does, and says which. It recognises
// memberlist v0.7.0's error texts (TestGossipKey* fail if they change):
// a peer that cannot read our push-pull answers with an error message
// under its own settings, which we cannot read either.
func keyMismatch(err error) (reason string, ok bool) {
	if err == nil {
		return "", false
	}
	s := err.Error()
	for _, c := range []struct{ text, reason string }{
		{"no installed keys could decrypt the message", "it gossips under another key"},
		{"remote state is encrypted and encryption is not configured", "it encrypts gossip and this node has no key"},
		{"encryption is configured but remote state is not encrypted", "this node encrypts gossip and it does not"},
	} {
		if strings.Contains(s, c.text) {
			return c.reason, true
		}
	}
	return "", false
}
