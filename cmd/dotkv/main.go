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
	err := app.Run(args)
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
