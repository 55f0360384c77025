package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/bench"
)

func loadCommand() *cli.Command {
	return &cli.Command{
		Name:  "load",
		Usage: "measure PUT and GET throughput and latency of a running cluster (and of a bare net/http handler as the ceiling)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "targets", Usage: "node URLs, comma-separated", Value: "http://127.0.0.11:8080,http://127.0.0.12:8080,http://127.0.0.13:8080"},
			&cli.IntFlag{Name: "concurrency", Usage: "concurrent clients", Value: 64},
			&cli.DurationFlag{Name: "duration", Usage: "length of each phase", Value: 10 * time.Second},
			&cli.IntFlag{Name: "value-size", Usage: "value size in bytes", Value: 1024},
			&cli.IntFlag{Name: "keys", Usage: "key space GETs read (written by the PUT phase)", Value: 10000},
			&cli.StringFlag{Name: "w", Usage: "write level for PUTs", Value: "2"},
			&cli.StringFlag{Name: "r", Usage: "read level for GETs", Value: "2"},
			&cli.BoolFlag{Name: "ceiling", Usage: "first run the same load against an in-process bare net/http handler", Value: true},
		},
		Action: func(c *cli.Context) error {
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			var targets []string
			for _, t := range strings.Split(c.String("targets"), ",") {
				if t = strings.TrimRight(strings.TrimSpace(t), "/"); t != "" {
					if !strings.Contains(t, "://") {
						t = "http://" + t
					}
					targets = append(targets, t)
				}
			}
			conc := c.Int("concurrency")
			hc := bench.NewClient(conc)
			defer hc.CloseIdleConnections()
			prefix := fmt.Sprintf("load-%d-", time.Now().UnixNano())
			type phase struct {
				name      string
				targets   []string
				op, level string
			}
			var phases []phase
			if c.Bool("ceiling") {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					return cli.Exit("start the bare handler: "+err.Error(), exitError)
				}
				srv := &http.Server{Handler: bench.BareHandler(c.Int("value-size")), ReadHeaderTimeout: 5 * time.Second}
				go func() { _ = srv.Serve(ln) }()
				defer srv.Close()
				bare := []string{"http://" + ln.Addr().String()}
				phases = append(phases, phase{"bare net/http", bare, "put", ""}, phase{"bare net/http", bare, "get", ""})
			}
			phases = append(phases,
				phase{"dotkv", targets, "put", c.String("w")},
				phase{"dotkv", targets, "get", c.String("r")})
			w := c.App.Writer
			fmt.Fprintf(w, "load: %d clients, %v per phase, %d-byte values, targets %s\n\n", conc, c.Duration("duration"), c.Int("value-size"), strings.Join(targets, " "))
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "TARGET\tOP\tOPS/S\tP50 ms\tP99 ms\tP99.9 ms\tMAX ms\tERRORS\t")
			failed := false
			for _, p := range phases {
				res, err := bench.RunLoad(ctx, hc, bench.LoadConfig{
					Targets: p.targets, Op: p.op, Concurrency: conc, Duration: c.Duration("duration"),
					ValueSize: c.Int("value-size"), Keys: c.Int("keys"), KeyPrefix: prefix, Level: p.level,
				})
				if err != nil {
					return cli.Exit(err.Error(), exitError)
				}
				ms := func(q float64) string { return fmt.Sprintf("%.2f", float64(res.Percentile(q).Microseconds())/1000) }
				fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%d\t\n", p.name, strings.ToUpper(p.op), res.Throughput(),
					ms(50), ms(99), ms(99.9), ms(100), res.Errors)
				if res.Errors > 0 {
					failed = true
					fmt.Fprintf(os.Stderr, "dotkv load: %s %s: first error: %s\n", p.name, p.op, res.FirstError)
				}
				if ctx.Err() != nil {
					break
				}
			}
			_ = tw.Flush()
			if failed {
				return cli.Exit("some requests failed", exitError)
			}
			return nil
		},
	}
}
