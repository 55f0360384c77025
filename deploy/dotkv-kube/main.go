// Command dotkv-kube runs a dotkv node in a pod of a Kubernetes
// StatefulSet (deploy/kubernetes). The image has no shell, so the little
// logic a pod needs beyond dotkv's flags lives here:
//
//	dotkv-kube server [dotkv server flags]
//
// starts dotkv server (the dotkv binary beside this one, or $DOTKV_BIN)
// in its place, with three changes to the flags, taken from the pod's
// name ($POD_NAME, else the host name; a StatefulSet names its pods
// SET-ORDINAL): --id defaults to the pod name; the pod's own address is
// dropped from --join (a node that reaches itself would count itself as
// an answering peer); and the first pod (ordinal 0) gets --new-cluster,
// so that it alone forms the cluster when its data directory is empty
// and no --join address answers (dotkv ignores the flag once the
// directory holds data).
//
//	dotkv-kube prestop [--addr URL] [--token-file FILE] [--ca FILE]
//
// is the pod's preStop hook. A StatefulSet deletes the pods of ordinal
// replicas and up on a scale-down, after lowering spec.replicas, and
// deletes or restarts pods for many other reasons (rolling updates,
// evictions, node drains) without changing it. So prestop reads the
// StatefulSet's spec.replicas from the API server (with the pod's service
// account, which needs "get" on statefulsets) and, only if the pod's
// ordinal is not below it, asks the node to leave the cluster (POST
// /cluster/leave: it hands its partitions to the remaining nodes) and
// waits until it has left. A restart, or a scale to 0 replicas (the whole
// cluster stops and keeps its volumes), leaves nothing.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `usage:
  dotkv-kube server [dotkv server flags]   start dotkv server for this pod
  dotkv-kube prestop [flags]               leave the cluster if this pod is being scaled away
`

// run runs the subcommand of args and returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "server":
		return execServer(args[1:], getenv, stderr)
	case "prestop":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runPrestop(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "dotkv-kube: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

// podName returns this pod's name: $POD_NAME, else the host name (which
// a StatefulSet sets to the pod name).
func podName(getenv func(string) string) string {
	if n := getenv("POD_NAME"); n != "" {
		return n
	}
	n, _ := os.Hostname()
	return n
}

// splitPodName splits a StatefulSet pod name SET-ORDINAL; ok is false for
// a name without a numeric suffix.
func splitPodName(name string) (set string, ordinal int, ok bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n < 0 || name[i+1] == '+' {
		return "", 0, false
	}
	return name[:i], n, true
}

// serverArgs returns the dotkv server flags for pod from the given ones:
// --id defaults to pod, entries of --join whose host is the pod (its
// name, or its name's first DNS label) are dropped, and --new-cluster is
// added for ordinal 0 unless the flags set it. notes say what changed.
func serverArgs(pod string, args []string) (out, notes []string) {
	hasID, hasNewCluster := false, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, inline := flagParts(a)
		switch name {
		case "id":
			hasID = true
		case "new-cluster":
			hasNewCluster = true
		case "join":
			if !inline && i+1 < len(args) {
				i++
				value = args[i]
			}
			kept, dropped := dropSelf(pod, value)
			if dropped != "" {
				notes = append(notes, fmt.Sprintf("dropped %s from --join: it is this pod", dropped))
			}
			out = append(out, "--join="+kept)
			continue
		}
		out = append(out, a)
	}
	if !hasID && pod != "" {
		out = append([]string{"--id=" + pod}, out...)
		notes = append(notes, "--id="+pod+" (the pod name)")
	}
	if _, ordinal, ok := splitPodName(pod); ok && ordinal == 0 && !hasNewCluster {
		out = append(out, "--new-cluster")
		notes = append(notes, "--new-cluster (ordinal 0: forms the cluster if its data directory is empty and no --join address answers)")
	}
	return out, notes
}

// flagParts splits a command-line argument "--name=value", "-name=value",
// "--name" or "-name" into the flag's name and inline value; name is ""
// for an argument that is not a flag.
func flagParts(arg string) (name, value string, inline bool) {
	if !strings.HasPrefix(arg, "-") || arg == "-" || arg == "--" {
		return "", "", false
	}
	s := strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-")
	name, value, inline = strings.Cut(s, "=")
	return name, value, inline
}

// dropSelf removes from a --join list (HOST:PORT[,HOST:PORT...]) the
// entries whose host is pod or starts with "pod.".
func dropSelf(pod, join string) (kept, dropped string) {
	var keep, drop []string
	for _, seed := range strings.Split(join, ",") {
		seed = strings.TrimSpace(seed)
		if seed == "" {
			continue
		}
		host := seed
		if h, _, err := net.SplitHostPort(seed); err == nil {
			host = h
		}
		if pod != "" && (host == pod || strings.HasPrefix(host, pod+".")) {
			drop = append(drop, seed)
		} else {
			keep = append(keep, seed)
		}
	}
	return strings.Join(keep, ","), strings.Join(drop, ",")
}

// dotkvPath returns the dotkv binary to run: $DOTKV_BIN, else "dotkv"
// beside this executable.
func dotkvPath(getenv func(string) string) (string, error) {
	if p := getenv("DOTKV_BIN"); p != "" {
		return p, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(self), "dotkv"), nil
}

// execServer replaces this process with dotkv server for this pod; it
// returns only if that fails.
func execServer(args []string, getenv func(string) string, stderr io.Writer) int {
	pod := podName(getenv)
	argv, notes := serverArgs(pod, args)
	for _, n := range notes {
		fmt.Fprintf(stderr, "dotkv-kube: pod %s: %s\n", pod, n)
	}
	bin, err := dotkvPath(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "dotkv-kube:", err)
		return 2
	}
	err = syscall.Exec(bin, append([]string{"dotkv", "server"}, argv...), os.Environ())
	fmt.Fprintf(stderr, "dotkv-kube: exec %s: %v\n", bin, err)
	return 2
}

// serviceAccountDir is where Kubernetes mounts a pod's service account
// token, the cluster CA and the pod's namespace.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// prestopConfig is what prestop needs to know.
type prestopConfig struct {
	pod         string
	set         string
	ordinal     int
	namespace   string
	apiURL      string       // https://HOST:PORT of the API server
	api         *http.Client // trusts the cluster CA
	apiToken    string
	nodeURL     string       // the local node's client API
	node        *http.Client // trusts --ca
	nodeToken   string       // bearer token for POST /cluster/leave
	poll        time.Duration
	out, errOut io.Writer
}

// runPrestop is dotkv-kube prestop.
func runPrestop(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dotkv-kube prestop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "http://127.0.0.1:8080", "the local node's client API `URL`")
	tokenFile := fs.String("token-file", "", "`FILE` holding an admin token for POST /cluster/leave (default: $DOTKV_TOKEN)")
	caFile := fs.String("ca", "", "`FILE` of the CA that signed the node's certificate, for an https:// --addr")
	saDir := fs.String("serviceaccount", serviceAccountDir, "`DIR` of the pod's service account token, ca.crt and namespace")
	poll := fs.Duration("poll", time.Second, "how often to ask the node whether it has left")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "dotkv-kube prestop: unexpected arguments %q\n", fs.Args())
		return 2
	}
	cfg, err := newPrestopConfig(getenv, *addr, *tokenFile, *caFile, *saDir, *poll)
	if err != nil {
		fmt.Fprintln(stderr, "dotkv-kube prestop: not leaving:", err)
		return 1
	}
	cfg.out, cfg.errOut = stdout, stderr
	return cfg.run(ctx)
}

// newPrestopConfig gathers the pod's identity, its API server access and
// the local node's address.
func newPrestopConfig(getenv func(string) string, addr, tokenFile, caFile, saDir string, poll time.Duration) (*prestopConfig, error) {
	cfg := &prestopConfig{pod: podName(getenv), nodeURL: strings.TrimSuffix(addr, "/"), poll: max(poll, 10*time.Millisecond)}
	var ok bool
	if cfg.set, cfg.ordinal, ok = splitPodName(cfg.pod); !ok {
		return nil, fmt.Errorf("pod name %q is not SET-ORDINAL (set POD_NAME)", cfg.pod)
	}
	if !strings.Contains(cfg.nodeURL, "://") {
		cfg.nodeURL = "http://" + cfg.nodeURL
	}
	cfg.nodeToken = getenv("DOTKV_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, err
		}
		cfg.nodeToken = strings.TrimSpace(string(b))
	}
	cfg.node = &http.Client{Timeout: 30 * time.Second}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.node.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}

	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("KUBERNETES_SERVICE_HOST/PORT not set: not in a Kubernetes pod")
	}
	cfg.apiURL = "https://" + net.JoinHostPort(host, port)
	token, err := os.ReadFile(filepath.Join(saDir, "token"))
	if err != nil {
		return nil, fmt.Errorf("service account token: %w", err)
	}
	cfg.apiToken = strings.TrimSpace(string(token))
	pool, err := loadPool(filepath.Join(saDir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("service account CA: %w", err)
	}
	cfg.api = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	if cfg.namespace = getenv("POD_NAMESPACE"); cfg.namespace == "" {
		ns, err := os.ReadFile(filepath.Join(saDir, "namespace"))
		if err != nil {
			return nil, fmt.Errorf("namespace (set POD_NAMESPACE): %w", err)
		}
		cfg.namespace = strings.TrimSpace(string(ns))
	}
	return cfg, nil
}

// loadPool reads a PEM file of CA certificates.
func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", file)
	}
	return pool, nil
}

// run decides and, on a scale-down, leaves.
func (c *prestopConfig) run(ctx context.Context) int {
	replicas, err := c.desiredReplicas(ctx)
	if err != nil {
		fmt.Fprintf(c.errOut, "dotkv-kube prestop: pod %s: cannot tell a scale-down from a restart, not leaving: %v\n", c.pod, err)
		return 1
	}
	switch {
	case replicas == 0:
		fmt.Fprintf(c.out, "dotkv-kube prestop: pod %s: StatefulSet %s scaled to 0: the cluster stops and keeps its data; not leaving\n", c.pod, c.set)
		return 0
	case c.ordinal < replicas:
		fmt.Fprintf(c.out, "dotkv-kube prestop: pod %s: ordinal %d < %d replicas: a restart, not a scale-down; not leaving\n", c.pod, c.ordinal, replicas)
		return 0
	}
	fmt.Fprintf(c.out, "dotkv-kube prestop: pod %s: ordinal %d >= %d replicas: scale-down; leaving the cluster\n", c.pod, c.ordinal, replicas)
	if err := c.leave(ctx); err != nil {
		fmt.Fprintf(c.errOut, "dotkv-kube prestop: pod %s: leave: %v\n", c.pod, err)
		return 1
	}
	fmt.Fprintf(c.out, "dotkv-kube prestop: pod %s: left the cluster\n", c.pod)
	return 0
}

// desiredReplicas reads spec.replicas of the pod's StatefulSet.
func (c *prestopConfig) desiredReplicas(ctx context.Context) (int, error) {
	url := fmt.Sprintf("%s/apis/apps/v1/namespaces/%s/statefulsets/%s", c.apiURL, c.namespace, c.set)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.apiToken)
	req.Header.Set("Accept", "application/json")
	resp, err := c.api.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	var sts struct {
		Spec struct {
			Replicas *int `json:"replicas"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &sts); err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	if sts.Spec.Replicas == nil {
		return 1, nil // the API's default
	}
	return *sts.Spec.Replicas, nil
}

// leave asks the node to leave, then waits until it has: /healthz says
// "left" (or "removed"), or the node, which exits once it has left, no
// longer answers.
func (c *prestopConfig) leave(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.nodeURL+"/cluster/leave", nil)
	if err != nil {
		return err
	}
	if c.nodeToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.nodeToken)
	}
	resp, err := c.node.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /cluster/leave: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(c.out, "dotkv-kube prestop: pod %s: leaving: handing off its partitions\n", c.pod)
	t := time.NewTicker(c.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		status, err := c.health(ctx)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil // the node exited: it has left
		case status == "left" || status == "removed":
			return nil
		}
		// Any other error (a timeout on a busy node): ask again.
	}
}

// health returns the node's /healthz status.
func (c *prestopConfig) health(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.nodeURL+"/healthz", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.node.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var h struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&h); err != nil {
		return "", nil // an answer, but not one to go by: ask again
	}
	return h.Status, nil
}
