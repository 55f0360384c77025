package main

// dotkv server's configuration sources. Every server flag can also be given
// by a DOTKV_* environment variable and by a key of the --config file (a
// TOML file whose keys are the flag names), and the first of these that
// sets it wins: the command line, then the environment, then the file,
// then the flag's default.

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/storage"
)

// configFlag names the flag of the configuration file.
const configFlag = "config"

// envVarOf returns the environment variable of a server flag: DOTKV_ and
// the flag's name in upper case, '-' as '_' (max-siblings:
// DOTKV_MAX_SIBLINGS).
func envVarOf(flag string) string {
	return "DOTKV_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// withEnvVars gives each flag its environment variable (envVarOf) and
// returns flags. It panics on a flag type it does not know: a server flag
// of a new type must be added here.
func withEnvVars(flags []cli.Flag) []cli.Flag {
	for _, f := range flags {
		env := []string{envVarOf(f.Names()[0])}
		switch f := f.(type) {
		case *cli.StringFlag:
			f.EnvVars = env
		case *cli.IntFlag:
			f.EnvVars = env
		case *cli.Int64Flag:
			f.EnvVars = env
		case *cli.BoolFlag:
			f.EnvVars = env
		case *cli.DurationFlag:
			f.EnvVars = env
		default:
			panic(fmt.Sprintf("withEnvVars: flag %s of unsupported type %T", f.Names()[0], f))
		}
	}
	return flags
}

// settings are a command's flag values, with the configuration file that
// gave some of them.
type settings struct {
	*cli.Context
	env      bool            // the flags have environment variables (envVarOf)
	file     string          // the --config file; "" without one
	fromFile map[string]bool // the flags whose value the file gave
}

// loadSettings reads the --config file, if one is named, into the
// command's flags that neither the command line nor the environment set.
// Its errors name the file, and the key at fault: one that is no flag's
// name, or whose value the flag does not take.
func loadSettings(c *cli.Context) (settings, error) {
	s := settings{Context: c, env: true, file: c.String(configFlag)}
	if s.file == "" {
		return s, nil
	}
	var doc map[string]any
	md, err := toml.DecodeFile(s.file, &doc)
	if err != nil {
		return s, fmt.Errorf("config file %s: %w", s.file, err)
	}
	flags := make(map[string]cli.Flag) // the flags a file may set
	for _, f := range c.Command.Flags {
		if name := f.Names()[0]; name != configFlag && f != cli.HelpFlag {
			flags[name] = f
		}
	}
	var keys, unknown []string // top-level keys, in the file's order
	for _, k := range md.Keys() {
		if len(k) != 1 {
			continue // inside a table: the table itself is the unknown key
		}
		if key := k[0]; flags[key] == nil {
			unknown = append(unknown, key)
		} else {
			keys = append(keys, key)
		}
	}
	if len(unknown) > 0 {
		return s, unknownKeysError(s.file, unknown, flags)
	}
	s.fromFile = make(map[string]bool)
	for _, key := range keys {
		if c.IsSet(key) { // on the command line or in the environment
			continue
		}
		v, err := flagText(doc[key], flags[key])
		if err == nil {
			err = c.Set(key, v)
		}
		if err != nil {
			return s, fmt.Errorf("config file %s: %s = %s: %w", s.file, key, tomlText(doc[key]), valueError(flags[key], err))
		}
		s.fromFile[key] = true
	}
	return s, nil
}

// name returns how an error names flag: "--fsync", "--fsync or
// DOTKV_FSYNC" while that variable is set, or "config file FILE: fsync" if
// its value came from the configuration file.
func (s settings) name(flag string) string {
	if s.fromFile[flag] {
		return fmt.Sprintf("config file %s: %s", s.file, flag)
	}
	if _, ok := os.LookupEnv(envVarOf(flag)); ok && s.env {
		return fmt.Sprintf("--%s or %s", flag, envVarOf(flag))
	}
	return "--" + flag
}

// flagText returns a configuration file's value as the command line would
// give it: strings as they are, numbers and booleans as text, and (for
// --join alone) an array of strings joined by commas.
func flagText(v any, f cli.Flag) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	case []any:
		if f.Names()[0] != "join" {
			break
		}
		parts := make([]string, len(v))
		for i, p := range v {
			s, ok := p.(string)
			if !ok {
				return "", errors.New("want strings HOST:PORT")
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		return "", errors.New("want a value, not a table")
	}
	return "", errors.New("want a single string, number or boolean")
}

// tomlText returns v about as the file wrote it, for error messages.
func tomlText(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case map[string]any:
		return "{...}"
	}
	return fmt.Sprint(v)
}

// valueError explains a value a flag does not take (err: why the flag
// refused it).
func valueError(f cli.Flag, err error) error {
	switch f.(type) {
	case *cli.IntFlag, *cli.Int64Flag:
		return errors.New("want a whole number")
	case *cli.BoolFlag:
		return errors.New("want true or false")
	case *cli.DurationFlag:
		return errors.New(`want a duration such as "10s", "5m" or "1h"`)
	}
	return err
}

// unknownKeysError names the configuration file's keys that are no
// flag's, suggesting the flag meant where one is close.
func unknownKeysError(file string, keys []string, flags map[string]cli.Flag) error {
	var names []string
	for _, k := range keys {
		n := strconv.Quote(k)
		if k == configFlag {
			n += " (a config file cannot name another)"
		} else if s := closestFlag(k, flags); s != "" {
			n += fmt.Sprintf(" (did you mean %q?)", s)
		}
		names = append(names, n)
	}
	noun := "key"
	if len(keys) > 1 {
		noun = "keys"
	}
	return fmt.Errorf("config file %s: unknown %s %s: the keys are the names of dotkv server's flags (see dotkv server --help)",
		file, noun, strings.Join(names, ", "))
}

// closestFlag returns the flag name key was probably meant to be, or "":
// key with '_' for '-', or the name fewest edits away if they are at most
// two and fewer than its length.
func closestFlag(key string, flags map[string]cli.Flag) string {
	if k := strings.ReplaceAll(key, "_", "-"); flags[k] != nil {
		return k
	}
	best, bestDist := "", 3
	for name := range flags {
		d := editDistance(key, name)
		if d < len(name) && (d < bestDist || d == bestDist && name < best) {
			best, bestDist = name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (in bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// bytesText shows a byte count in help, with its size: "1048576 = 1MiB".
func bytesText(n int64) string {
	return fmt.Sprintf("%d = %s", n, storage.FormatSize(n))
}

// durationText shows a duration in help without zero minutes and seconds
// ("1h", not "1h0m0s").
func durationText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
