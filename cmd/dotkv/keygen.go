package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/gossip"
)

func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "print a new random gossip encryption key (32 bytes, base64), a line for --gossip-key-file",
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return cli.Exit("usage: dotkv keygen", exitError)
			}
			key, err := gossip.GenerateKey()
			if err != nil {
				return cli.Exit(err.Error(), exitError)
			}
			fmt.Fprintln(c.App.Writer, key)
			return nil
		},
	}
}
