package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/dotkv/dotkv/client"
)

// LoadConfig describes a closed-loop load: Concurrency clients, each
// sending one request at a time, each request to the next of Targets.
type LoadConfig struct {
	// Targets are node base URLs ("http://127.0.0.11:8080").
	Targets []string
	// Op is "put" (fresh keys, blind writes) or "get" (keys written by a
	// preceding put load with the same KeyPrefix).
	Op          string
	Concurrency int
	// Duration bounds the run; MaxOps, if > 0, bounds the operations.
	Duration time.Duration
	MaxOps   int64
	// ValueSize is the PUT body size in bytes.
	ValueSize int
	// Keys bounds the key space GETs read from (the put load's first
	// Keys keys).
	Keys int
	// KeyPrefix names the keys ("load-" by default).
	KeyPrefix string
	// Level is the write level of a put load, the read level of a get load
	// ("": the node's default).
	Level string
}

// LoadResult is a load's outcome.
type LoadResult struct {
	Ops, Errors int64
	Elapsed     time.Duration
	// Latency is the histogram of successful requests, in microseconds.
	Latency *hdrhistogram.Histogram
	// FirstError is the first failure seen, if any.
	FirstError string
}

// Throughput returns successful operations per second.
func (r LoadResult) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Percentile returns the latency at quantile q (0..100).
func (r LoadResult) Percentile(q float64) time.Duration {
	return time.Duration(r.Latency.ValueAtQuantile(q)) * time.Microsecond
}

// NewClient returns an HTTP client with enough keep-alive connections for
// concurrency clients.
func NewClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: concurrency,
			MaxConnsPerHost:     concurrency,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		},
	}
}

// RunLoad runs one load, sending through a client.Client over the
// targets on hc, and returns its result. It stops at the first of ctx
// done, Duration elapsed or MaxOps reached.
func RunLoad(ctx context.Context, hc *http.Client, cfg LoadConfig) (LoadResult, error) {
	if len(cfg.Targets) == 0 || cfg.Concurrency < 1 || (cfg.Duration <= 0 && cfg.MaxOps <= 0) {
		return LoadResult{}, fmt.Errorf("load: need targets, concurrency ≥ 1 and a duration or an op count")
	}
	if cfg.Op != "put" && cfg.Op != "get" {
		return LoadResult{}, fmt.Errorf("load: op %q: want put or get", cfg.Op)
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "load-"
	}
	api, err := client.New(client.Config{Endpoints: cfg.Targets, HTTPClient: hc})
	if err != nil {
		return LoadResult{}, fmt.Errorf("load: %w", err)
	}
	var opts []client.Option
	if l := client.Level(cfg.Level); l != "" && cfg.Op == "put" {
		opts = append(opts, client.W(l))
	} else if l != "" {
		opts = append(opts, client.R(l))
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	value := bytes.Repeat([]byte{'x'}, cfg.ValueSize)
	var (
		seq      atomic.Int64
		errs     atomic.Int64
		firstErr sync.Once
		firstMsg string
		wg       sync.WaitGroup
	)
	hists := make([]*hdrhistogram.Histogram, cfg.Concurrency)
	start := time.Now()
	for w := range cfg.Concurrency {
		hists[w] = hdrhistogram.New(1, 60_000_000, 3) // 1 µs .. 60 s
		wg.Go(func() {
			for ctx.Err() == nil {
				i := seq.Add(1)
				if cfg.MaxOps > 0 && i > cfg.MaxOps {
					return
				}
				k := i
				if cfg.Op == "get" && cfg.Keys > 0 {
					k = i%int64(cfg.Keys) + 1
				}
				key := cfg.KeyPrefix + strconv.FormatInt(k, 10)
				t0 := time.Now()
				var err error
				if cfg.Op == "put" {
					_, err = api.Put(ctx, key, value, opts...)
				} else {
					_, err = api.Get(ctx, key, opts...)
				}
				if err != nil {
					if ctx.Err() != nil {
						return // the run ended mid-request: not a failure
					}
					errs.Add(1)
					firstErr.Do(func() { firstMsg = err.Error() })
					continue
				}
				_ = hists[w].RecordValue(time.Since(t0).Microseconds())
			}
		})
	}
	wg.Wait()
	res := LoadResult{Elapsed: time.Since(start), Errors: errs.Load(), Latency: hdrhistogram.New(1, 60_000_000, 3), FirstError: firstMsg}
	for _, h := range hists {
		res.Latency.Merge(h)
	}
	res.Ops = res.Latency.TotalCount()
	return res, nil
}

// BareHandler is the ceiling a load is compared with: a net/http handler
// that reads PUT bodies and answers GETs with a value of valueSize bytes,
// doing nothing else.
func BareHandler(valueSize int) http.Handler {
	value := bytes.Repeat([]byte{'x'}, valueSize)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodGet {
			_, _ = w.Write(value)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
