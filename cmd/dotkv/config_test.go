//go:build unix

package main

import (
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/node"
	"github.com/dotkv/dotkv/storage"
)

// parseServer parses exactly args (after "dotkv server") as the command
// does, without running the node.
func parseServer(t *testing.T, args ...string) (node.Config, error) {
	t.Helper()
	cmd := serverCommand()
	var cfg node.Config
	var perr error
	cmd.Action = func(c *cli.Context) error {
		cfg, perr = nodeConfigFrom(c)
		return nil
	}
	app := &cli.App{Commands: []*cli.Command{cmd}}
	if err := app.Run(append([]string{"dotkv", "server"}, args...)); err != nil {
		t.Fatal(err)
	}
	return cfg, perr
}

// writeConfig writes a configuration file and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "dotkv.toml")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// comparable returns cfg without its logger (a new one each parse).
func comparable(cfg node.Config) node.Config {
	cfg.Logger = nil
	return cfg
}

// TestConfigPrecedence is the case: the file sets fsync, n and
// max-siblings, the environment fsync, the command line n. Each value
// comes from the first source that sets it (flag, environment, file,
// default), and every other field is the default.
func TestConfigPrecedence(t *testing.T) {
	data := t.TempDir()
	f := writeConfig(t, `
fsync = "always"
n = 5
max-siblings = 50
`)
	t.Setenv("DOTKV_FSYNC", "never")
	cfg, err := parseServer(t, "--id", "n1", "--data", data, "--config", f, "--n", "3")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Fsync != storage.FsyncNever {
		t.Errorf("fsync %v, want never (the environment beats the file)", cfg.Fsync)
	}
	if cfg.N != 3 {
		t.Errorf("n %d, want 3 (the flag beats the file)", cfg.N)
	}
	if cfg.MaxSiblings != 50 {
		t.Errorf("max-siblings %d, want 50 (the file beats the default)", cfg.MaxSiblings)
	}

	// The same without the three: every other field is the default.
	os.Unsetenv("DOTKV_FSYNC") // t.Setenv restores it
	def, err := parseServer(t, "--id", "n1", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	if def.Fsync != storage.FsyncAlways || def.N != 3 || def.MaxSiblings != storage.DefaultMaxSiblings {
		t.Errorf("defaults: fsync %v, n %d, max-siblings %d", def.Fsync, def.N, def.MaxSiblings)
	}
	cfg.Fsync, cfg.N, cfg.MaxSiblings = def.Fsync, def.N, def.MaxSiblings
	if got, want := comparable(cfg), comparable(def); !reflect.DeepEqual(got, want) {
		t.Errorf("other fields differ from the defaults:\n got %+v\nwant %+v", got, want)
	}

	// The flag beats the environment too.
	t.Setenv("DOTKV_N", "7")
	if cfg, err := parseServer(t, "--id", "n1", "--data", data, "--config", f, "--n", "3"); err != nil || cfg.N != 3 {
		t.Errorf("--n 3 with DOTKV_N=7: n %d (%v), want 3", cfg.N, err)
	}
	if cfg, err := parseServer(t, "--id", "n1", "--data", data, "--config", f); err != nil || cfg.N != 7 {
		t.Errorf("DOTKV_N=7 and n = 5 in the file: n %d (%v), want 7", cfg.N, err)
	}
}

// TestServerDefaultsAreNodes: dotkv server's defaults are node's
// DefaultConfig, converted to the flags' conventions.
func TestServerDefaultsAreNodes(t *testing.T) {
	cfg, err := parseServer(t, "--id", "n1", "--data", "d")
	if err != nil {
		t.Fatal(err)
	}
	want := node.DefaultConfig()
	want.ID, want.DataDir, want.Version = "n1", "d", buildVersion()
	want.CacheSize = 0                             // storage's, from this machine's memory
	want.HintInterval, want.CleanupInterval = 0, 0 // no flags: the node's defaults
	if got := comparable(cfg); !reflect.DeepEqual(got, want) {
		t.Errorf("server defaults:\n got %+v\nwant %+v", got, want)
	}
}

// TestConfigFileValues: every kind of flag takes its value from the file,
// written as TOML would have it, and the required flags may come from it.
func TestConfigFileValues(t *testing.T) {
	data := t.TempDir()
	f := writeConfig(t, `# a node
id = "n2"
data = "`+data+`"
gossip = "127.0.0.1:7000"
join = ["127.0.0.1:7946", "127.0.0.2:7946"]
r = 2
w = "all"
max-hint-bytes = 1024
transfer-rate = 0
memtable-size = "32MiB"
aae = false
aae-interval = "5s"
warn-siblings = 10
`)
	cfg, err := parseServer(t, "--config", f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ID != "n2" || cfg.DataDir != data || cfg.GossipAddr != "127.0.0.1:7000" {
		t.Errorf("id %q, data %q, gossip %q", cfg.ID, cfg.DataDir, cfg.GossipAddr)
	}
	if want := []string{"127.0.0.1:7946", "127.0.0.2:7946"}; !reflect.DeepEqual(cfg.Join, want) {
		t.Errorf("join %q, want %q", cfg.Join, want)
	}
	if cfg.R.String() != "2" || cfg.W.String() != "all" {
		t.Errorf("r %v, w %v, want 2, all", cfg.R, cfg.W)
	}
	if cfg.MaxHintBytes != 1024 || cfg.TransferRate != -1 || cfg.MemTableSize != 32<<20 {
		t.Errorf("max-hint-bytes %d, transfer-rate %d, memtable-size %d; want 1024, -1 (unlimited), 32MiB",
			cfg.MaxHintBytes, cfg.TransferRate, cfg.MemTableSize)
	}
	if !cfg.DisableAAE || cfg.AAEInterval != 5*time.Second || cfg.WarnSiblings != 10 {
		t.Errorf("aae off %v, aae-interval %v, warn-siblings %d; want true, 5s, 10", cfg.DisableAAE, cfg.AAEInterval, cfg.WarnSiblings)
	}
	// A comma-separated join, as on the command line.
	f = writeConfig(t, `join = "127.0.0.1:7946, 127.0.0.2:7946"`+"\ngossip = \"127.0.0.1:7000\"\n")
	if cfg, err := parseServer(t, "--id", "n1", "--data", data, "--config", f); err != nil || len(cfg.Join) != 2 {
		t.Errorf("join as a string: %q (%v)", cfg.Join, err)
	}
	// DOTKV_CONFIG names the file too.
	t.Setenv("DOTKV_CONFIG", f)
	if cfg, err := parseServer(t, "--id", "n1", "--data", data); err != nil || cfg.GossipAddr != "127.0.0.1:7000" {
		t.Errorf("DOTKV_CONFIG: gossip %q (%v)", cfg.GossipAddr, err)
	}
}

// TestConfigFileErrors: an unknown key is refused, named (with the flag
// probably meant), and so is a value its flag does not take, naming the
// key and the file.
func TestConfigFileErrors(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       []string // in the error, besides the file's path
	}{
		{"typo", `fsnyc = "never"`, []string{`unknown key "fsnyc"`, `did you mean "fsync"`}},
		{"underscores", "max_siblings = 50", []string{`"max_siblings"`, `did you mean "max-siblings"`}},
		{"several", "x = 1\nn = 3\nyy = 2", []string{`unknown keys "x", "yy"`}},
		{"table", "[server]\nn = 3", []string{`unknown key "server"`}},
		{"config", `config = "other.toml"`, []string{`unknown key "config"`, "cannot name another"}},
		{"help", `help = true`, []string{`unknown key "help"`}},
		{"int as text", `n = "three"`, []string{`n = "three"`, "whole number"}},
		{"int as float", `max-hints = 1.5`, []string{`max-hints = 1.5`, "whole number"}},
		{"bool", `aae = "yes"`, []string{`aae = "yes"`, "true or false"}},
		{"duration", `aae-interval = 10`, []string{`aae-interval = 10`, "duration"}},
		{"join", `join = [1, 2]`, []string{`join = [1 2]`, "HOST:PORT"}},
		{"array", `fsync = ["never"]`, []string{`fsync = [never]`, "single"}},
		{"inline table", `fsync = {mode = "never"}`, []string{`fsync = {...}`, "not a table"}},
		{"fsync", `fsync = "sometimes"`, []string{"fsync", `"sometimes"`}},
		{"n", `n = 0`, []string{"n 0", "1..16"}},
		{"r", `r = "most"`, []string{"r", `"most"`}},
		{"max-record", `max-record = "lots"`, []string{"max-record", "lots"}},
		{"cache-size", `cache-size = "1KiB"`, []string{"cache-size", "cache size"}},
		{"warn above max", "max-siblings = 5\nwarn-siblings = 10", []string{"warn-siblings 10", "max-siblings 5"}},
		{"syntax", `fsync = "never`, []string{"line 1"}},
	} {
		f := writeConfig(t, c.text)
		_, err := parseServer(t, "--id", "n1", "--data", "d", "--config", f)
		if err == nil {
			t.Errorf("%s: %q accepted", c.name, c.text)
			continue
		}
		for _, w := range append(c.want, "config file "+f) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q: error %q does not say %q", c.name, c.text, err, w)
			}
		}
	}
	_, err := parseServer(t, "--id", "n1", "--data", "d", "--config", "no-such.toml")
	if err == nil || !strings.Contains(err.Error(), "no-such.toml") {
		t.Errorf("missing file: %v", err)
	}
	// A bad value from the command line or the environment names the flag,
	// and the variable.
	if _, err := parseServer(t, "--id", "n1", "--data", "d", "--fsync", "x"); err == nil || !strings.HasPrefix(err.Error(), "--fsync: ") {
		t.Errorf("--fsync x: %v", err)
	}
	t.Setenv("DOTKV_FSYNC", "x")
	if _, err := parseServer(t, "--id", "n1", "--data", "d"); err == nil || !strings.HasPrefix(err.Error(), "--fsync or DOTKV_FSYNC: ") {
		t.Errorf("DOTKV_FSYNC=x: %v", err)
	}
}

// TestRequiredFlags: --id and --data are needed from some source.
func TestRequiredFlags(t *testing.T) {
	for _, args := range [][]string{{"--data", "d"}, {"--id", "n1"}} {
		_, err := parseServer(t, args...)
		if err == nil || !strings.Contains(err.Error(), "required flag") {
			t.Errorf("%q: %v, want a required flag error", args, err)
		}
	}
	t.Setenv("DOTKV_ID", "n3")
	t.Setenv("DOTKV_DATA", "d")
	if cfg, err := parseServer(t); err != nil || cfg.ID != "n3" || cfg.DataDir != "d" {
		t.Errorf("from the environment: id %q, data %q (%v)", cfg.ID, cfg.DataDir, err)
	}
}

var envVarName = regexp.MustCompile(`^DOTKV_[A-Z0-9]+(_[A-Z0-9]+)*$`)

// TestEveryServerFlagHasEnvVar: each of dotkv server's flags has its
// DOTKV_ variable, which sets it.
func TestEveryServerFlagHasEnvVar(t *testing.T) {
	flags := serverCommand().Flags
	if len(flags) < 30 {
		t.Fatalf("%d server flags: want them all", len(flags))
	}
	seen := make(map[string]string)
	for _, f := range flags {
		name := f.Names()[0]
		df, ok := f.(cli.DocGenerationFlag)
		if !ok {
			t.Errorf("--%s: %T has no environment variables", name, f)
			continue
		}
		env := df.GetEnvVars()
		want := "DOTKV_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if len(env) != 1 || env[0] != want || !envVarName.MatchString(env[0]) {
			t.Errorf("--%s: environment variables %q, want [%s]", name, env, want)
			continue
		}
		if other, ok := seen[want]; ok {
			t.Errorf("--%s and --%s share %s", name, other, want)
		}
		seen[want] = name
	}
	// One of each type, set by its variable.
	t.Setenv("DOTKV_MAX_SIBLINGS", "7")     // int
	t.Setenv("DOTKV_MAX_HINT_BYTES", "99")  // int64
	t.Setenv("DOTKV_AAE", "false")          // bool
	t.Setenv("DOTKV_TOMBSTONE_GRACE", "2h") // duration
	t.Setenv("DOTKV_MAX_RECORD", "1MiB")    // string
	cfg, err := parseServer(t, "--id", "n1", "--data", "d")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxSiblings != 7 || cfg.MaxHintBytes != 99 || !cfg.DisableAAE || cfg.TombstoneGrace != 2*time.Hour || cfg.MaxRecordBytes != 1<<20 {
		t.Errorf("from the environment: %+v", cfg)
	}
}

// TestConfigAgainstBinary: `dotkv server --config f.toml` with
// DOTKV_FSYNC=never in the environment and --n 3 on the command line runs
// with fsync never (the environment beats the file), N = 3 (the flag
// beats the file) and at most 50 siblings (the file beats the default).
func TestConfigAgainstBinary(t *testing.T) {
	dotkvBin(t)
	// Not parallel: the server inherits this test's environment.
	t.Setenv("DOTKV_FSYNC", "never")
	data := t.TempDir()
	var s *server
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		f := writeConfig(t, `id = "c1"
data = "`+data+`"
http = "`+addr+`"
fsync = "always"
n = 5
max-siblings = 50
`)
		s = &server{
			proc: startProc(t, "dotkv server c1", "server", "--config", f, "--n", "3"),
			id:   "c1", addr: addr, base: "http://" + addr,
			client: &http.Client{Timeout: requestTimeout, Transport: &http.Transport{}},
		}
		t.Cleanup(s.client.CloseIdleConnections)
		err := s.waitHealthy()
		if err == nil {
			break
		}
		if s.exited() && strings.Contains(s.stderr.String(), "address already in use") && attempt < 5 {
			continue
		}
		t.Fatalf("server: %v\nstderr:\n%s", err, s.stderr)
	}

	// N = 3: a read level of 4 is beyond it (a one-node ring has N = 1,
	// so /cluster/status cannot tell).
	r := s.do(t, http.MethodGet, kvPath("k")+"?r=4", nil, nil, false)
	wantError(t, "r=4", r, http.StatusBadRequest, "bad_parameter")
	if !strings.Contains(string(r.Body), "1..3") {
		t.Errorf("r=4: %s, want N = 3 named (1..3)", r.Body)
	}
	for i := range 50 {
		s.put(t, "k", "text/plain", "", []byte(strconv.Itoa(i))) // blind: one more sibling each
	}
	r = s.do(t, http.MethodPut, kvPath("k"), http.Header{"Content-Type": {"text/plain"}}, []byte("51st"), false)
	wantError(t, "the 51st sibling", r, http.StatusConflict, "too_many_siblings")
	s.stop()
	if !strings.Contains(s.stderr.String(), `"fsync":"never"`) {
		t.Errorf("the node did not say fsync never:\n%s", s.stderr)
	}
}
