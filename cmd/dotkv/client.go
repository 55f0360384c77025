package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/certs"
	"github.com/dotkv/dotkv/client"
)

var addrFlag = &cli.StringFlag{
	Name: "addr", Usage: "`URL` of any dotkv node: http(s)://HOST:PORT, or HOST[:PORT] (port 8080 if none); the default is n1 of dotkv dev",
	Value: defaultAddr(), EnvVars: []string{"DOTKV_ADDR"},
}

// nodeAddr is --addr as a base URL: http:// if it names no scheme, and
// the API's usual port 8080 if it names neither a scheme nor a port (a
// bare HOST would otherwise mean port 80).
func nodeAddr(addr string) string {
	addr = strings.TrimRight(strings.TrimSpace(addr), "/")
	if strings.Contains(addr, "://") {
		return addr
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "8080")
	}
	return "http://" + addr
}

// defaultAddr is where `dotkv dev` puts its first node.
func defaultAddr() string {
	if runtime.GOOS == "linux" {
		return "http://127.0.0.11:8080"
	}
	return "http://127.0.0.1:8081"
}

// clientFlags are the flags of every command that talks to a node.
func clientFlags() []cli.Flag {
	return []cli.Flag{
		addrFlag,
		&cli.StringFlag{Name: "token", Usage: "bearer `TOKEN` for a node with access control (--auth-token-file)", EnvVars: []string{"DOTKV_TOKEN"}},
		&cli.StringFlag{Name: "ca", Usage: "`FILE` of the CA certificate that signed the nodes' (https:// addresses)", EnvVars: []string{"DOTKV_CA"}},
	}
}

var (
	// httpClient sends every request of the client commands (with --ca's
	// TLS configuration).
	httpClient = &http.Client{Timeout: 70 * time.Second}
	// token is --token; authHeader the Authorization header every raw
	// request (do) carries ("": none).
	token, authHeader string
)

// configureClient applies --token and --ca to the requests the command
// sends.
func configureClient(c *cli.Context) error {
	if t := c.String("token"); t != "" {
		token, authHeader = t, "Bearer "+t
	}
	if f := c.String("ca"); f != "" {
		conf, err := certs.ClientConfig(f)
		if err != nil {
			return cli.Exit("--ca: "+err.Error(), exitError)
		}
		httpClient.Transport = &http.Transport{TLSClientConfig: conf}
	}
	return nil
}

// newClient returns an API client for the node at --addr, with --token and
// --ca.
func newClient(c *cli.Context) (*client.Client, error) {
	cfg := client.DefaultConfig()
	cfg.Endpoints = []string{nodeAddr(c.String("addr"))}
	cfg.HTTPClient = httpClient
	cfg.Token = token
	cl, err := client.New(cfg)
	if err != nil {
		return nil, cli.Exit("--addr: "+err.Error(), exitError)
	}
	return cl, nil
}

// apiError turns an error of the API client into an exit error: 1 for a
// 404, 2 otherwise, with the node's status and message if it answered.
func apiError(err error) error {
	r, ok := client.AsResponse(err)
	if !ok {
		return cli.Exit(err.Error(), exitError)
	}
	code := exitError
	if r.Status == http.StatusNotFound {
		code = exitNotFound
	}
	return cli.Exit(fmt.Sprintf("%d %s: %s", r.Status, http.StatusText(r.Status), r.Body.Error), code)
}

// levels returns the options of the level flags that were set.
func levels(c *cli.Context, names ...string) []client.Option {
	var opts []client.Option
	for _, n := range names {
		if !c.IsSet(n) {
			continue
		}
		l := client.Level(c.String(n))
		switch n {
		case "r":
			opts = append(opts, client.R(l))
		case "pr":
			opts = append(opts, client.PR(l))
		case "w":
			opts = append(opts, client.W(l))
		case "pw":
			opts = append(opts, client.PW(l))
		}
	}
	return opts
}

// serverError turns an error response of a raw request (do) into an exit
// error: 1 for 404, 2 otherwise, with the server's JSON message.
func serverError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e client.ErrorBody
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	code := exitError
	if resp.StatusCode == http.StatusNotFound {
		code = exitNotFound
	}
	return cli.Exit(fmt.Sprintf("%s: %s", resp.Status, msg), code)
}

// do sends a raw request to URL u, for the endpoints the API client does
// not cover (a backup's stream).
func do(method, u string, body io.Reader, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, cli.Exit(err.Error(), exitError)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if authHeader != "" {
		req.Header.Set("Authorization", authHeader)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, cli.Exit(err.Error(), exitError)
	}
	return resp, nil
}

// mutate sends a PUT of value or a DELETE (method) of the command's KEY
// argument with its --context, --w and --pw, and returns the context of
// the new version.
func mutate(c *cli.Context, method string, value []byte, opts ...client.Option) (string, error) {
	cl, err := newClient(c)
	if err != nil {
		return "", err
	}
	defer cl.CloseIdleConnections()
	opts = append(opts, levels(c, "w", "pw")...)
	if vctx := c.String("context"); vctx != "" {
		opts = append(opts, client.Context(vctx))
	}
	var w *client.WriteResult
	if method == http.MethodPut {
		w, err = cl.Put(c.Context, c.Args().Get(0), value, opts...)
	} else {
		w, err = cl.Delete(c.Context, c.Args().Get(0), opts...)
	}
	if err != nil {
		return "", apiError(err)
	}
	return w.Context, nil
}

func putCommand() *cli.Command {
	return &cli.Command{
		Name:      "put",
		Usage:     "write a value (VALUE - reads stdin); prints the new version's context",
		ArgsUsage: "KEY VALUE",
		Before:    configureClient,
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "context", Usage: "context `TOKEN` from a read (omit for a blind write, which adds a sibling)"},
			&cli.StringFlag{Name: "w", Usage: "write `LEVEL`: one, quorum, all or a number (default: the node's)"},
			&cli.StringFlag{Name: "pw", Usage: "primary write `LEVEL`"},
			&cli.StringFlag{Name: "content-type", Usage: "content `TYPE` of the value", Value: "application/octet-stream"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return cli.Exit("usage: dotkv put [flags] KEY VALUE", exitError)
			}
			value := []byte(c.Args().Get(1))
			if c.Args().Get(1) == "-" {
				data, err := io.ReadAll(os.Stdin)
				if err != nil {
					return cli.Exit("read stdin: "+err.Error(), exitError)
				}
				value = data
			}
			newCtx, err := mutate(c, http.MethodPut, value, client.ContentType(c.String("content-type")))
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, newCtx)
			return nil
		},
	}
}

func getCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "read a key: every sibling and the context to write back with",
		ArgsUsage: "KEY",
		Before:    configureClient,
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "r", Usage: "read `LEVEL`: one, quorum, all or a number (default: the node's)"},
			&cli.StringFlag{Name: "pr", Usage: "primary read `LEVEL`"},
			&cli.BoolFlag{Name: "json", Usage: "print the server's JSON"},
			&cli.BoolFlag{Name: "raw", Usage: "write the value's bytes alone to stdout (a key with siblings is an error: read it with --json and resolve)"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: dotkv get [flags] KEY", exitError)
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			defer cl.CloseIdleConnections()
			obj, err := cl.Get(c.Context, c.Args().Get(0), levels(c, "r", "pr")...)
			if err != nil {
				return apiError(err)
			}
			w := c.App.Writer
			if c.Bool("raw") {
				var live []client.Sibling
				for _, s := range obj.Siblings {
					if !s.Deleted {
						live = append(live, s)
					}
				}
				if len(live) != 1 {
					return cli.Exit(fmt.Sprintf("--raw: the key has %d siblings; read it with --json and write back with its context to resolve them", len(live)), exitError)
				}
				_, err := w.Write(live[0].Value)
				return err
			}
			if c.Bool("json") {
				// The node's JSON answer, byte for byte: the same shape,
				// encoded the same way.
				b, err := json.Marshal(obj.JSON())
				if err != nil {
					return cli.Exit("encode: "+err.Error(), exitError)
				}
				_, _ = w.Write(append(b, '\n'))
				return nil
			}
			fmt.Fprintf(w, "context: %s\nsiblings: %d\n", obj.Context, len(obj.Siblings))
			for i, s := range obj.Siblings {
				if s.Deleted {
					fmt.Fprintf(w, "--- %d (deleted)\n", i+1)
					continue
				}
				fmt.Fprintf(w, "--- %d (%s)\n%s\n", i+1, s.ContentType, s.Value)
			}
			return nil
		},
	}
}

func deleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "delete a key (without --context: what a read sees now)",
		ArgsUsage: "KEY",
		Before:    configureClient,
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "context", Usage: "context `TOKEN` from a read"},
			&cli.StringFlag{Name: "w", Usage: "write `LEVEL`"},
			&cli.StringFlag{Name: "pw", Usage: "primary write `LEVEL`"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: dotkv delete [flags] KEY", exitError)
			}
			_, err := mutate(c, http.MethodDelete, nil)
			return err
		},
	}
}
