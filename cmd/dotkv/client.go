package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/certs"
)

var addrFlag = &cli.StringFlag{
	Name: "addr", Usage: "URL of any dotkv node (default: n1 of `dotkv dev`)", Value: defaultAddr(), EnvVars: []string{"DOTKV_ADDR"},
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
	httpClient = &http.Client{Timeout: 70 * time.Second}
	// authHeader is the Authorization header every request carries ("":
	// none), from --token.
	authHeader string
)

// configureClient applies --token and --ca to the requests the command
// sends.
func configureClient(c *cli.Context) error {
	if t := c.String("token"); t != "" {
		authHeader = "Bearer " + t
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

// kvURL builds the URL of key on the node at addr, with query parameters.
func kvURL(addr, key string, q url.Values) (string, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u := strings.TrimRight(addr, "/") + "/kv/" + url.PathEscape(key)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	if _, err := url.Parse(u); err != nil {
		return "", fmt.Errorf("--addr %q: %w", addr, err)
	}
	return u, nil
}

// levels collects the consistency flags that were set.
func levels(c *cli.Context, names ...string) url.Values {
	q := url.Values{}
	for _, n := range names {
		if c.IsSet(n) {
			q.Set(n, c.String(n))
		}
	}
	return q
}

// serverError turns an error response into an exit error: 1 for 404, 2
// otherwise, with the server's JSON message.
func serverError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
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

// mutate sends a PUT or DELETE of the command's KEY argument with its
// --context, --w and --pw, and returns the context of the new version.
func mutate(c *cli.Context, method string, body io.Reader, hdr http.Header) (string, error) {
	u, err := kvURL(c.String("addr"), c.Args().Get(0), levels(c, "w", "pw"))
	if err != nil {
		return "", cli.Exit(err.Error(), exitError)
	}
	if c.String("context") != "" {
		hdr.Set(api.HeaderContext, c.String("context"))
	}
	resp, err := do(method, u, body, hdr)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return "", serverError(resp)
	}
	return resp.Header.Get(api.HeaderContext), nil
}

func putCommand() *cli.Command {
	return &cli.Command{
		Name:      "put",
		Usage:     "write a value (VALUE - reads stdin); prints the new version's context",
		ArgsUsage: "KEY VALUE",
		Before:    configureClient,
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "context", Usage: "context token from a read (omit for a blind write, which adds a sibling)"},
			&cli.StringFlag{Name: "w", Usage: "write level: one, quorum, all or a number"},
			&cli.StringFlag{Name: "pw", Usage: "primary write level"},
			&cli.StringFlag{Name: "content-type", Value: "application/octet-stream"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return cli.Exit("usage: dotkv put [flags] KEY VALUE", exitError)
			}
			var body io.Reader = strings.NewReader(c.Args().Get(1))
			if c.Args().Get(1) == "-" {
				data, err := io.ReadAll(os.Stdin)
				if err != nil {
					return cli.Exit("read stdin: "+err.Error(), exitError)
				}
				body = bytes.NewReader(data)
			}
			newCtx, err := mutate(c, http.MethodPut, body, http.Header{"Content-Type": {c.String("content-type")}})
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
			&cli.StringFlag{Name: "r", Usage: "read level: one, quorum, all or a number"},
			&cli.StringFlag{Name: "pr", Usage: "primary read level"},
			&cli.BoolFlag{Name: "json", Usage: "print the server's JSON"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: dotkv get [flags] KEY", exitError)
			}
			u, err := kvURL(c.String("addr"), c.Args().Get(0), levels(c, "r", "pr"))
			if err != nil {
				return cli.Exit(err.Error(), exitError)
			}
			resp, err := do(http.MethodGet, u, nil, http.Header{"Accept": {"application/json"}})
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return serverError(resp)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return cli.Exit("read response: "+err.Error(), exitError)
			}
			if c.Bool("json") {
				_, _ = c.App.Writer.Write(body)
				return nil
			}
			var st struct {
				Context  string `json:"context"`
				Siblings []struct {
					Value       []byte `json:"value"`
					ContentType string `json:"content_type"`
					Deleted     bool   `json:"deleted"`
				} `json:"siblings"`
			}
			if err := json.Unmarshal(body, &st); err != nil {
				return cli.Exit("decode response: "+err.Error(), exitError)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "context: %s\nsiblings: %d\n", st.Context, len(st.Siblings))
			for i, s := range st.Siblings {
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
			&cli.StringFlag{Name: "context", Usage: "context token from a read"},
			&cli.StringFlag{Name: "w", Usage: "write level"},
			&cli.StringFlag{Name: "pw", Usage: "primary write level"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: dotkv delete [flags] KEY", exitError)
			}
			_, err := mutate(c, http.MethodDelete, nil, http.Header{})
			return err
		},
	}
}
