// Command dotkv is the dotkv key-value store: the server, a one-command
// local cluster (dev), a client (put, get, delete, status) and the
// membership changes (leave, remove), and keygen for gossip encryption.
//
// Client exit codes: 0 ok, 1 not found, 2 any other error.
package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit codes of the client commands.
const (
	exitOK       = 0
	exitNotFound = 1
	exitError    = 2
)

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	app := newApp()
	err := app.Run(flagsFirst(app, args))
	if err == nil {
		return exitOK
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(app.ErrWriter, "dotkv:", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(app.ErrWriter, "dotkv:", err)
	return exitError
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "dotkv",
		Usage: "a leaderless, Dynamo-style key-value store",
		// Errors are printed and mapped to exit codes by run, not by cli.
		ExitErrHandler: func(*cli.Context, error) {},
		ErrWriter:      os.Stderr,
		Writer:         os.Stdout,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return cli.Exit(fmt.Sprintf("unknown command %q (see dotkv --help)", c.Args().First()), exitError)
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			serverCommand(),
			devCommand(),
			putCommand(),
			getCommand(),
			deleteCommand(),
			statusCommand(),
			leaveCommand(),
			removeCommand(),
			loadCommand(),
			benchCommand(),
			keygenCommand(),
			versionCommand(),
			backupCommand(),
		},
	}
}

// interspersed lists the commands whose flags may follow their arguments
// (`dotkv get KEY --r all`), as users of other CLIs expect; urfave/cli
// stops at the first argument.
var interspersed = []string{"put", "get", "delete", "status", "leave", "remove", "backup"}

// flagsFirst moves the flags of an interspersed command before its
// arguments, and puts "--" before the arguments, so that urfave/cli sees
// every flag and takes an argument that starts with "-" (a value "-5") as
// an argument. A token that names none of the command's flags is an
// argument, "-" (stdin) too, and everything after "--" is.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 3 || !slices.Contains(interspersed, args[1]) {
		return args
	}
	cmd := app.Command(args[1])
	if cmd == nil {
		return args
	}
	lookup := func(name string) (cli.Flag, bool) {
		for _, f := range append(slices.Clone(cmd.Flags), cli.HelpFlag) {
			if slices.Contains(f.Names(), name) {
				return f, true
			}
		}
		return nil, false
	}
	var flags, positional []string
	for i := 2; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f, ok := lookup(name)
		if !ok {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		if _, isBool := f.(*cli.BoolFlag); !isBool && !hasValue && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	out := append(slices.Clone(args[:2]), flags...)
	if len(positional) > 0 {
		out = append(append(out, "--"), positional...)
	}
	return out
}
