package auth_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dotkv/dotkv/auth"
)

const (
	readTok  = "read-token-0123456789"
	writeTok = "write-token-0123456789"
	adminTok = "admin-token-0123456789"
)

func TestRoleOrder(t *testing.T) {
	roles := []auth.Role{0, auth.Read, auth.Write, auth.Admin, auth.Admin + 1}
	want := map[auth.Role][]auth.Role{ // role: what it allows
		auth.Read:  {0, auth.Read},
		auth.Write: {0, auth.Read, auth.Write},
		auth.Admin: {0, auth.Read, auth.Write, auth.Admin},
	}
	for _, r := range roles {
		for _, need := range roles[1:4] {
			allowed := false
			for _, a := range want[r] {
				allowed = allowed || a == need
			}
			if got := r.Allows(need); got != allowed {
				t.Errorf("%v.Allows(%v) = %v, want %v", r, need, got, allowed)
			}
		}
	}
	for _, r := range roles[1:4] {
		p, err := auth.ParseRole(r.String())
		if err != nil || p != r {
			t.Errorf("ParseRole(%q) = %v, %v", r.String(), p, err)
		}
	}
	if auth.Role(0).Allows(0) || (auth.Admin + 1).Allows(auth.Read) {
		t.Error("an invalid role allows something")
	}
	for _, s := range []string{"", "Read", "root", "readwrite"} {
		if _, err := auth.ParseRole(s); err == nil {
			t.Errorf("ParseRole(%q) accepted", s)
		}
	}
}

func TestParse(t *testing.T) {
	file := "# dotkv tokens\n" +
		"\n" +
		"read " + readTok + "\n" +
		"  write\t" + writeTok + "   # the web tier\r\n" +
		"admin " + adminTok + "#not-a-comment\n" +
		"   # indented comment\n" +
		"read " + readTok + "x#y\n" +
		"\t\n"
	toks, err := auth.Parse(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]auth.Role{
		readTok: auth.Read, writeTok: auth.Write, adminTok + "#not-a-comment": auth.Admin, readTok + "x#y": auth.Read,
	} {
		if got, ok := toks.Role(tok); !ok || got != want {
			t.Errorf("Role(%q) = %v, %v; want %v", tok, got, ok, want)
		}
	}
	for _, tok := range []string{"", adminTok, readTok + " ", " " + readTok, strings.ToUpper(readTok), readTok[:len(readTok)-1], "read"} {
		if r, ok := toks.Role(tok); ok {
			t.Errorf("Role(%q) = %v, want unknown", tok, r)
		}
	}
	if toks.Len() != 4 || toks.Count(auth.Read) != 2 || toks.Count(auth.Write) != 1 || toks.Count(auth.Admin) != 1 {
		t.Errorf("counts: %v", toks)
	}
	if s := toks.String(); s != "4 tokens (2 read, 1 write, 1 admin)" {
		t.Errorf("String() = %q", s)
	}
	var none *auth.Tokens
	if _, ok := none.Role(readTok); ok || none.Len() != 0 {
		t.Error("a nil *Tokens knows a token")
	}
}

func TestParseRefuses(t *testing.T) {
	secret := "s3cret-s3cret-s3cret"
	for _, c := range []struct {
		name, file string
		line       int // 0: the file as a whole
		want       string
	}{
		{"empty", "", 0, "no tokens"},
		{"only comments", "# nothing yet\n\n   \n# read " + secret + "\n", 0, "no tokens"},
		{"unknown role", "read " + readTok + "\nroot " + secret + "\n", 2, `role "root"`},
		{"capitalised role", "Admin " + secret + "\n", 1, "unknown role"},
		{"swapped pair", secret + " read\n", 1, "first field (20 characters, not shown)"},
		{"short token", "read 0123456789abcde\n", 1, "shorter than the minimum of 16"},
		{"short secret-like token", "read s3cret\n", 1, "6 characters"},
		{"missing token", "read\n", 1, "found 1 fields"},
		{"token commented out", "write #" + secret + "\n", 1, "found 1 fields"},
		{"three fields", "read " + secret + " " + secret + "\n", 1, "found 3 fields"},
		{"control character", "read " + secret + "\x00x\n", 1, "printable ASCII at byte 21"},
		{"non-ASCII", "read " + secret + "é\n", 1, "printable ASCII"},
		{"no-break space", "read " + secret + "\u00a0more\n", 1, "printable ASCII"},
		{"duplicate", "read " + secret + "\n\nwrite " + writeTok + "\nadmin " + secret + "\n", 4, "same token as line 1"},
		{"duplicate same role", "read " + secret + "\nread " + secret + "  # again\n", 2, "same token as line 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := auth.Parse(strings.NewReader(c.file))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), readTok) || strings.Contains(err.Error(), writeTok) {
				t.Errorf("error %q echoes a token", err)
			}
			var le *auth.LineError
			switch {
			case c.line == 0 && !errors.Is(err, auth.ErrNoTokens):
				t.Errorf("error %q is not ErrNoTokens", err)
			case c.line != 0 && (!errors.As(err, &le) || le.Line != c.line):
				t.Errorf("error %q: want a LineError for line %d", err, c.line)
			case c.line != 0 && !strings.HasPrefix(err.Error(), "line "):
				t.Errorf("error %q does not start with its line", err)
			}
		})
	}
	if err := auth.ErrNoTokens.Error(); !strings.Contains(err, "refuse every request") {
		t.Errorf("ErrNoTokens does not say why: %q", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, "read "+readTok+"\nwrite "+writeTok+"\n")
	f, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path() != path || f.Tokens().Len() != 2 {
		t.Fatalf("Path %q, %v", f.Path(), f.Tokens())
	}
	want := func(tok string, role auth.Role) {
		t.Helper()
		got, ok := f.Role(tok)
		if ok != (role != 0) || got != role {
			t.Errorf("Role(%q) = %v, %v; want %v", tok, got, ok, role)
		}
	}
	want(readTok, auth.Read)
	want(writeTok, auth.Write)
	want(adminTok, 0)

	// A new file: a token removed, one added, one changing its role.
	writeFile(t, path, "admin "+adminTok+"\nadmin "+readTok+"\n")
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	want(readTok, auth.Admin)
	want(writeTok, 0)
	want(adminTok, auth.Admin)

	// A broken file, an empty one, a missing one: the tokens stay.
	for _, content := range []string{"admin " + adminTok + "\nsuper " + writeTok + "\n", "", "#\n"} {
		writeFile(t, path, content)
		err := f.Reload()
		if err == nil {
			t.Fatalf("Reload accepted %q", content)
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "previous 2 tokens stay in use") {
			t.Errorf("Reload error %q does not name the file or say the tokens stay", err)
		}
		if strings.Contains(err.Error(), adminTok) || strings.Contains(err.Error(), writeTok) {
			t.Errorf("Reload error %q echoes a token", err)
		}
		want(readTok, auth.Admin)
		want(adminTok, auth.Admin)
		want(writeTok, 0)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reload of a missing file = %v", err)
	}
	want(adminTok, auth.Admin)
}

func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := auth.Load(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v", err)
	}
	path := filepath.Join(dir, "empty")
	writeFile(t, path, "# to do\n")
	if _, err := auth.Load(path); !errors.Is(err, auth.ErrNoTokens) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load of a file without tokens = %v", err)
	}
	var f *auth.File
	if _, ok := f.Role(readTok); ok {
		t.Error("a nil *File knows a token")
	}
}

// TestFileReloadConcurrent checks under -race that lookups running while
// the file is reloaded see one whole token set or the other.
func TestFileReloadConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	a := "read " + readTok + "\nwrite " + writeTok + "\n"
	b := "admin " + readTok + "\nadmin " + writeTok + "\n"
	writeFile(t, path, a)
	f, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				toks := f.Tokens()
				r1, ok1 := toks.Role(readTok)
				r2, ok2 := toks.Role(writeTok)
				if !ok1 || !ok2 || (r1 == auth.Admin) != (r2 == auth.Admin) {
					t.Errorf("a token set mixes two files: %v %v", r1, r2)
					return
				}
				if _, ok := f.Role(readTok); !ok {
					t.Error("a token listed by both files is unknown during a reload")
					return
				}
			}
		})
	}
	for i := range 200 {
		writeFile(t, path, []string{a, b}[i%2])
		if err := f.Reload(); err != nil {
			t.Error(err)
			break
		}
	}
	close(stop)
	wg.Wait()
}

func ExampleParse() {
	toks, err := auth.Parse(strings.NewReader(`
# operators
admin  ops-token-0123456789abcdef
write  app-writer-0123456789abcdef   # the web tier
read   dashboards-0123456789abcdef
`))
	if err != nil {
		panic(err)
	}
	role, ok := toks.Role("app-writer-0123456789abcdef")
	fmt.Println(toks, role, ok, role.Allows(auth.Read), role.Allows(auth.Admin))
	_, err = auth.Parse(strings.NewReader("read too-short\n"))
	fmt.Println(err)
	// Output:
	// 3 tokens (1 read, 1 write, 1 admin) write true true false
	// line 1: token is 9 characters, shorter than the minimum of 16
}
