// Package auth holds the bearer tokens of dotkv's client API and the role
// each one grants (--auth-token-file).
//
// A token file lists one "ROLE TOKEN" pair per line:
//
//	# operators
//	admin  3q2+7w-ops-token-of-at-least-16-chars
//	write  app-writer-0123456789abcdef   # the web tier
//	read   dashboards-0123456789abcdef
//
// Roles are read, write (which implies read) and admin (which implies
// both). A '#' starts a comment when it begins a line or follows
// whitespace; blank lines are ignored. A token is at least MinTokenLen
// characters of printable ASCII without spaces, and is listed once. A
// file that lists no token at all is refused: it would lock every client
// out.
//
// Tokens are kept only as their SHA-256 digests, and a lookup hashes the
// presented token and finds the digest in a map, so that no comparison
// ever runs over the bytes of a stored token: the time a lookup takes
// does not depend on how much of a guess matches a real token. Errors
// name the line of a problem and never echo a token.
package auth

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Role is what a token may do. Roles are ordered: a role allows what every
// lower one allows. The zero Role allows nothing.
type Role uint8

// The roles, lowest first.
const (
	// Read allows reading keys (GET and HEAD of /kv/) and the cluster's
	// status and preference lists.
	Read Role = iota + 1
	// Write allows what Read does and writing and deleting keys.
	Write
	// Admin allows everything: what Write does, /admin/, /debug/ and
	// membership changes (/cluster/leave, /cluster/remove/).
	Admin
)

// MinTokenLen is the shortest token a token file may list.
const MinTokenLen = 16

// String returns the role's name as a token file spells it ("none" for
// the zero Role, "role(N)" for a value that is no role).
func (r Role) String() string {
	switch r {
	case 0:
		return "none"
	case Read:
		return "read"
	case Write:
		return "write"
	case Admin:
		return "admin"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// Valid reports whether r is one of Read, Write and Admin.
func (r Role) Valid() bool { return r >= Read && r <= Admin }

// Allows reports whether a token of role r may do what needs role need:
// r is a valid role and at least need.
func (r Role) Allows(need Role) bool { return r.Valid() && r >= need }

// ParseRole returns the role named s: "read", "write" or "admin".
func ParseRole(s string) (Role, error) {
	switch s {
	case "read":
		return Read, nil
	case "write":
		return Write, nil
	case "admin":
		return Admin, nil
	}
	return 0, errors.New("unknown role (want read, write or admin)")
}

// digest is the SHA-256 of a token: what a Tokens set keeps of it.
type digest [sha256.Size]byte

// Tokens is an immutable set of tokens and their roles. The zero Tokens
// holds none.
type Tokens struct {
	roles map[digest]Role
	count [Admin + 1]int
}

// Role returns the role of token, and false if token is not in the set.
// Its time depends on the length of token, not on its content (see the
// package comment).
func (t *Tokens) Role(token string) (Role, bool) {
	if t == nil || len(t.roles) == 0 {
		return 0, false
	}
	role, ok := t.roles[sha256.Sum256([]byte(token))]
	return role, ok
}

// Len returns the number of tokens in the set.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.roles)
}

// Count returns the number of tokens of role r in the set.
func (t *Tokens) Count(r Role) int {
	if t == nil || !r.Valid() {
		return 0
	}
	return t.count[r]
}

// String summarises the set without naming any token, for a log line:
// "4 tokens (2 read, 1 write, 1 admin)".
func (t *Tokens) String() string {
	return fmt.Sprintf("%d tokens (%d read, %d write, %d admin)", t.Len(), t.Count(Read), t.Count(Write), t.Count(Admin))
}

// LineError is a problem on one line of a token file. Its message never
// holds the line's token.
type LineError struct {
	Line   int    // 1-based
	Reason string // what is wrong with it
}

func (e *LineError) Error() string { return "line " + strconv.Itoa(e.Line) + ": " + e.Reason }

// ErrNoTokens is the error of a token file that lists no token.
var ErrNoTokens = errors.New("no tokens: a token file without a single ROLE TOKEN line would refuse every request " +
	"(add one, or run without access control)")

// Parse reads a token file's content (see the package comment). The
// error of a malformed line is a *LineError; that of a file without
// tokens is ErrNoTokens.
func Parse(r io.Reader) (*Tokens, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	t := &Tokens{roles: map[digest]Role{}}
	firstLine := map[digest]int{}
	for i, line := range bytes.Split(data, []byte{'\n'}) {
		n := i + 1
		fields := strings.FieldsFunc(stripComment(string(line)), isSpaceRune)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, &LineError{n, fmt.Sprintf("want ROLE TOKEN, found %d fields", len(fields))}
		}
		role, err := ParseRole(fields[0])
		if err != nil {
			return nil, &LineError{n, describeRole(fields[0]) + ": " + err.Error()}
		}
		tok := fields[1]
		if reason := checkToken(tok); reason != "" {
			return nil, &LineError{n, reason}
		}
		d := digest(sha256.Sum256([]byte(tok)))
		if prev, dup := firstLine[d]; dup {
			return nil, &LineError{n, "the same token as line " + strconv.Itoa(prev) + " (each token is listed once, with one role)"}
		}
		firstLine[d] = n
		t.roles[d] = role
		t.count[role]++
	}
	if len(t.roles) == 0 {
		return nil, ErrNoTokens
	}
	return t, nil
}

// stripComment removes a comment: from a '#' at the start of the line or
// after whitespace to the end. A '#' inside a token is part of it.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || isSpace(line[i-1])) {
			return line[:i]
		}
	}
	return line
}

// isSpace reports whether c separates the fields of a line: ASCII
// whitespace only, so that any other character stays in its field (and a
// token holding one is refused rather than cut short).
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' }

func isSpaceRune(r rune) bool { return r < 0x80 && isSpace(byte(r)) }

// describeRole names a field found where a role belongs, without echoing
// it unless it is short and only letters: a field that may be a token
// (the pair written the other way round) is never repeated.
func describeRole(s string) string {
	if len(s) < 12 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") == "" {
		return "role " + strconv.Quote(s)
	}
	return "first field (" + strconv.Itoa(len(s)) + " characters, not shown)"
}

// checkToken returns why tok cannot be a token, or "" if it can. The
// reason does not quote tok.
func checkToken(tok string) string {
	if len(tok) < MinTokenLen {
		return fmt.Sprintf("token is %d characters, shorter than the minimum of %d", len(tok), MinTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c > '~' {
			return fmt.Sprintf("token has a character other than printable ASCII at byte %d (tokens are printable ASCII without spaces)", i+1)
		}
	}
	return ""
}

// File is the token set of a token file, reloadable while it is in use:
// Role may be called concurrently with Reload, and sees the old set or the
// new one, never a mix. A nil *File knows no token.
type File struct {
	path   string
	tokens atomic.Pointer[Tokens]
	mu     sync.Mutex // serialises Reload
}

// Load reads the token file at path.
func Load(path string) (*File, error) {
	t, err := readFile(path)
	if err != nil {
		return nil, err
	}
	f := &File{path: path}
	f.tokens.Store(t)
	return f, nil
}

// Reload reads the file again and, if it is valid, replaces the token
// set at once: requests checked after Reload returns see only the new
// tokens. If it is not valid (or cannot be read), the previous tokens stay
// in use and the error says why. Write a new file under another name and
// rename it into place, so that Reload never reads one half-written.
func (f *File) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, err := readFile(f.path)
	if err != nil {
		return fmt.Errorf("%w (the previous %d tokens stay in use)", err, f.tokens.Load().Len())
	}
	f.tokens.Store(t)
	return nil
}

// Role returns the role of token, and false if the file does not list it.
func (f *File) Role(token string) (Role, bool) {
	if f == nil {
		return 0, false
	}
	return f.tokens.Load().Role(token)
}

// Tokens returns the token set in use.
func (f *File) Tokens() *Tokens {
	if f == nil {
		return nil
	}
	return f.tokens.Load()
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

func readFile(path string) (*Tokens, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	defer fh.Close()
	t, err := Parse(fh)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return t, nil
}
