package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testVersion is the version the test binaries are built with, as the
// Dockerfile builds the image's with -X main.version.
const testVersion = "v0.0.0-deploy-test"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binaries builds dotkv and dotkv-kube once, as the Dockerfile does
// (static, -trimpath, the version set by -ldflags), and returns their
// paths.
func binaries(t *testing.T) (dotkv, kube string) {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "dotkv-deploy-test-"); buildErr != nil {
			return
		}
		for _, b := range []struct{ out, pkg, ldflags string }{
			{"dotkv", "./cmd/dotkv", "-X main.version=" + testVersion},
			{"dotkv-kube", "./deploy/dotkv-kube", ""},
		} {
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", b.ldflags, "-o", filepath.Join(buildDir, b.out), b.pkg)
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "dotkv"), filepath.Join(buildDir, "dotkv-kube")
}

// helpFlags runs a binary's help and returns the flag names it lists.
func helpFlags(t *testing.T, bin string, args ...string) []string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s+--?([A-Za-z0-9][A-Za-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		names = append(names, m[1])
	}
	if len(names) < 3 {
		t.Fatalf("%s %s lists no flags:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
	}
	return names
}

// The dotkv-kube commands the manifests may run, as installed in the image.
const (
	kubeBin  = "/usr/local/bin/dotkv-kube"
	dotkvBin = "/usr/local/bin/dotkv"
)

// TestManifestFlagsExist checks that every flag the StatefulSet passes to
// dotkv server, and its preStop hook to dotkv-kube prestop, exists, and
// that every $(VAR) they use is set in the container's env.
func TestManifestFlagsExist(t *testing.T) {
	dotkv, kube := binaries(t)
	_, c := loadManifests(t).dotkvStatefulSet(t)

	if !slices.Equal(c.Command, []string{kubeBin, "server"}) {
		t.Fatalf("container command %q, want [%s server] (the test checks its args as dotkv server flags)", c.Command, kubeBin)
	}
	serverFlags := helpFlags(t, dotkv, "server", "--help")
	for _, want := range []string{"id", "data", "http", "gossip", "rpc", "join", "new-cluster"} {
		if !slices.Contains(serverFlags, want) {
			t.Fatalf("dotkv server --help: no --%s among %v (help format changed?)", want, serverFlags)
		}
	}
	names, _ := argFlags(t, c.Args)
	for _, n := range names {
		if !slices.Contains(serverFlags, n) {
			t.Errorf("the StatefulSet passes --%s, which dotkv server does not have", n)
		}
	}

	pre := c.Lifecycle.PreStop
	if pre == nil || pre.Exec == nil || len(pre.Exec.Command) < 2 || pre.Exec.Command[0] != kubeBin || pre.Exec.Command[1] != "prestop" {
		t.Fatalf("preStop hook: want exec [%s prestop ...], have %+v", kubeBin, pre)
	}
	prestopFlags := helpFlags(t, kube, "prestop", "-h")
	names, _ = argFlags(t, pre.Exec.Command[2:])
	for _, n := range names {
		if !slices.Contains(prestopFlags, n) {
			t.Errorf("the preStop hook passes --%s, which dotkv-kube prestop does not have (%v)", n, prestopFlags)
		}
	}

	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	for _, a := range slices.Concat(c.Args, pre.Exec.Command) {
		for _, m := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(a, -1) {
			if !env[m[1]] {
				t.Errorf("argument %q uses $(%s), which the container's env does not set", a, m[1])
			}
		}
	}
	// dotkv-kube reads these to find the pod's ordinal and namespace.
	for _, want := range []string{"POD_NAME", "POD_NAMESPACE", "POD_IP"} {
		if !env[want] {
			t.Errorf("the container's env does not set %s", want)
		}
	}
}

// wantPorts are the ports dotkv listens on, each with the flag that sets
// it and the container port names that must carry it.
var wantPorts = []struct {
	flag  string
	names []string
	proto []string
}{
	{"http", []string{"http"}, []string{"TCP"}},
	{"gossip", []string{"gossip-tcp", "gossip-udp"}, []string{"TCP", "UDP"}},
	{"rpc", []string{"rpc"}, []string{"TCP"}},
}

// TestManifestPorts checks that every containerPort is the port of the
// dotkv server flag that sets it (and each of those ports is declared),
// that the Services, probes and Dockerfiles use those ports, and that the
// objects refer to each other by the right names and labels.
func TestManifestPorts(t *testing.T) {
	m := loadManifests(t)
	sts, c := m.dotkvStatefulSet(t)
	_, values := argFlags(t, c.Args)

	byName := map[string]containerPort{}
	declared := map[string]bool{} // "8080/tcp"
	for _, p := range c.Ports {
		byName[p.Name] = p
		declared[fmt.Sprintf("%d/%s", p.ContainerPort, strings.ToLower(p.Protocol))] = true
	}
	matched := map[string]bool{}
	for _, w := range wantPorts {
		port := portOf(values[w.flag])
		if port == "" {
			t.Errorf("the StatefulSet passes no --%s=HOST:PORT", w.flag)
			continue
		}
		for i, name := range w.names {
			p, ok := byName[name]
			switch {
			case !ok:
				t.Errorf("no containerPort named %s (for --%s)", name, w.flag)
			case strconv.Itoa(p.ContainerPort) != port || p.Protocol != w.proto[i]:
				t.Errorf("containerPort %s is %d/%s, but --%s=%s listens on %s/%s", name, p.ContainerPort, p.Protocol, w.flag, values[w.flag], port, w.proto[i])
			}
			matched[name] = true
		}
	}
	for _, p := range c.Ports {
		if !matched[p.Name] {
			t.Errorf("containerPort %s (%d) matches no dotkv server flag", p.Name, p.ContainerPort)
		}
	}

	// Probes use a declared port; readiness is /healthz.
	probes := map[string]*handler{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe}
	for kind, p := range probes {
		switch {
		case p == nil:
			t.Errorf("the dotkv container has no %s", kind)
		case p.HTTPGet != nil:
			checkPortRef(t, kind, p.HTTPGet.Port, byName)
		case p.TCPSocket != nil:
			checkPortRef(t, kind, p.TCPSocket.Port, byName)
		default:
			t.Errorf("%s: want an httpGet or tcpSocket probe", kind)
		}
	}
	if p := c.ReadinessProbe; p != nil && (p.HTTPGet == nil || p.HTTPGet.Path != "/healthz") {
		t.Errorf("readinessProbe: want httpGet /healthz (503 while joining), have %+v", p)
	}
	if p := c.LivenessProbe; p != nil && p.HTTPGet != nil && p.HTTPGet.Path == "/healthz" {
		t.Error("livenessProbe on /healthz would kill a node during a long join (503 while joining)")
	}

	// Services: the headless one carries the StatefulSet's DNS names, also
	// of pods not ready yet; both select the pods and target their ports.
	var headless, client service
	m.get(t, "Service", sts.Spec.ServiceName, &headless)
	m.get(t, "Service", "dotkv-client", &client)
	if headless.Spec.ClusterIP != "None" || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: want clusterIP None and publishNotReadyAddresses (joining pods must be found)", sts.Spec.ServiceName)
	}
	podLabels := sts.Spec.Template.Metadata.Labels
	for name, svc := range map[string]service{sts.Spec.ServiceName: headless, "dotkv-client": client} {
		if !selects(svc.Spec.Selector, podLabels) {
			t.Errorf("Service %s selects %v, not the pods %v", name, svc.Spec.Selector, podLabels)
		}
		for _, sp := range svc.Spec.Ports {
			p, ok := byName[sp.TargetPort]
			if !ok || p.Protocol != sp.Protocol || p.ContainerPort != sp.Port {
				t.Errorf("Service %s port %s (%d/%s -> %s) targets no container port of that number and protocol", name, sp.Name, sp.Port, sp.Protocol, sp.TargetPort)
			}
		}
	}
	if !slices.ContainsFunc(client.Spec.Ports, func(p struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort string `yaml:"targetPort"`
		Protocol   string `yaml:"protocol"`
	}) bool {
		return p.TargetPort == "http"
	}) {
		t.Error("Service dotkv-client does not serve the HTTP port")
	}
	if !selects(sts.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("StatefulSet selector %v does not select its pods %v", sts.Spec.Selector.MatchLabels, podLabels)
	}

	var pdb podDisruptionBudget
	m.get(t, "PodDisruptionBudget", "dotkv", &pdb)
	if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != 1 || !selects(pdb.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("PodDisruptionBudget: want maxUnavailable 1 over the pods, have %+v", pdb.Spec)
	}

	// The volume claim is mounted where --data points.
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("want one volumeClaimTemplate, have %d", len(sts.Spec.VolumeClaimTemplates))
	}
	vct := sts.Spec.VolumeClaimTemplates[0].Metadata.Name
	if !slices.ContainsFunc(c.VolumeMounts, func(v struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	}) bool {
		return v.Name == vct && v.MountPath == values["data"]
	}) {
		t.Errorf("volume claim %s is not mounted at --data=%s", vct, values["data"])
	}

	// The preStop hook reads the StatefulSet with the pods' service account.
	sa := sts.Spec.Template.Spec.ServiceAccountName
	var r role
	m.get(t, "ServiceAccount", sa, new(struct{}))
	m.get(t, "Role", "dotkv-prestop", &r)
	if !slices.ContainsFunc(r.Rules, func(rule struct {
		APIGroups     []string `yaml:"apiGroups"`
		Resources     []string `yaml:"resources"`
		ResourceNames []string `yaml:"resourceNames"`
		Verbs         []string `yaml:"verbs"`
	}) bool {
		return slices.Contains(rule.APIGroups, "apps") && slices.Contains(rule.Resources, "statefulsets") &&
			slices.Contains(rule.Verbs, "get") && (len(rule.ResourceNames) == 0 || slices.Contains(rule.ResourceNames, "dotkv"))
	}) {
		t.Error("Role dotkv-prestop does not allow get on StatefulSet dotkv")
	}

	// Both Dockerfiles expose exactly the container ports and install the
	// commands the manifests run.
	for _, f := range []string{"../Dockerfile", "podman/Containerfile"} {
		exposed, installed, entrypoint := readDockerfile(t, f)
		if !sameSet(exposed, declared) {
			t.Errorf("%s exposes %v, the container ports are %v", f, keys(exposed), keys(declared))
		}
		for _, cmd := range []string{c.Command[0], c.Lifecycle.PreStop.Exec.Command[0], dotkvBin} {
			if !installed[cmd] {
				t.Errorf("%s does not install %s (installs %v)", f, cmd, keys(installed))
			}
		}
		if len(entrypoint) == 0 || !installed[entrypoint[0]] {
			t.Errorf("%s: ENTRYPOINT %q is not a file it installs", f, entrypoint)
		}
	}
}

// checkPortRef checks that a probe's port (a name or a number) is a
// declared TCP container port.
func checkPortRef(t *testing.T, what, port string, byName map[string]containerPort) {
	t.Helper()
	if p, ok := byName[port]; ok {
		if p.Protocol != "TCP" {
			t.Errorf("%s uses port %s, which is %s", what, port, p.Protocol)
		}
		return
	}
	for _, p := range byName {
		if strconv.Itoa(p.ContainerPort) == port && p.Protocol == "TCP" {
			return
		}
	}
	t.Errorf("%s uses port %q, which is no TCP container port", what, port)
}

// selects reports whether a label selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// sameSet reports whether a and b hold the same keys.
func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// keys returns the sorted keys of m.
func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// readDockerfile returns the ports a Dockerfile EXPOSEs ("8080/tcp"), the
// files its COPY instructions install into a directory ("DIR/NAME"), and
// its ENTRYPOINT (exec form).
func readDockerfile(t *testing.T, file string) (exposed, installed map[string]bool, entrypoint []string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	exposed, installed = map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "EXPOSE":
			for _, p := range f[1:] {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				exposed[strings.ToLower(p)] = true
			}
		case "COPY":
			var args []string
			for _, a := range f[1:] {
				if !strings.HasPrefix(a, "--") {
					args = append(args, a)
				}
			}
			if len(args) < 2 || !strings.HasSuffix(args[len(args)-1], "/") {
				continue
			}
			dir := args[len(args)-1]
			for _, src := range args[:len(args)-1] {
				installed[dir+filepath.Base(src)] = true
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(sc.Text(), f[0]))), &entrypoint); err != nil {
				t.Errorf("%s: ENTRYPOINT not in exec form: %v", file, err)
			}
		}
	}
	if len(exposed) == 0 {
		t.Errorf("%s exposes no port", file)
	}
	return exposed, installed, entrypoint
}

// TestDockerfileBuild checks that the Dockerfile builds both binaries
// static, with -trimpath and the version.
func TestDockerfileBuild(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "./cmd/dotkv", "./deploy/dotkv-kube", "USER 65532", "VOLUME"} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// Loopback addresses of the pods in TestManifestPodsRun: each pod has its
// own, as it would have its own pod IP.
var podIPs = []string{"127.0.0.201", "127.0.0.202", "127.0.0.203"}

// pod is a dotkv-kube server process started as the StatefulSet starts it.
type pod struct {
	name, ip string
	cmd      *exec.Cmd
	exited   chan struct{}
	err      error
	log      *bytes.Buffer
}

// startPod runs the StatefulSet's container command for pod ordinal k on
// this machine: $(VAR)s from the env the pod would have (its IP one of
// podIPs), the peers' DNS names mapped to their podIPs, /data to a
// directory of the test, 0.0.0.0 to the pod's IP; ports as in the
// manifest.
func startPod(t *testing.T, dotkv, kube string, c *container, k int) *pod {
	t.Helper()
	name := "dotkv-" + strconv.Itoa(k)
	env := map[string]string{"POD_NAME": name, "POD_NAMESPACE": "deploytest", "POD_IP": podIPs[k]}
	data := t.TempDir()
	var args []string
	for _, a := range c.Args {
		for v, val := range env {
			a = strings.ReplaceAll(a, "$("+v+")", val)
		}
		for i, ip := range podIPs {
			a = strings.ReplaceAll(a, fmt.Sprintf("dotkv-%d.dotkv.deploytest.svc", i), ip)
		}
		a = strings.ReplaceAll(a, "0.0.0.0", podIPs[k])
		if a == "--data=/data" {
			a = "--data=" + data
		}
		args = append(args, a)
	}
	for _, a := range args {
		if strings.Contains(a, "$(") || strings.Contains(a, ".svc") {
			t.Fatalf("argument %q not mapped to this machine", a)
		}
	}
	p := &pod{name: name, ip: podIPs[k], exited: make(chan struct{}), log: new(bytes.Buffer)}
	p.cmd = exec.Command(kube, append([]string{"server"}, args...)...)
	p.cmd.Env = append(os.Environ(), "DOTKV_BIN="+dotkv)
	for v, val := range env {
		p.cmd.Env = append(p.cmd.Env, v+"="+val)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s's output:\n%s", name, p.log)
		}
	})
	return p
}

// url returns the address of the pod's container port.
func (p *pod) url(port int, path string) string {
	return fmt.Sprintf("http://%s%s", net.JoinHostPort(p.ip, strconv.Itoa(port)), path)
}

// waitProbe polls an httpGet probe of the pod until it succeeds (2xx or
// 3xx, as the kubelet counts) and returns the last body; it fails the test
// if the pod exits first.
func (p *pod) waitProbe(t *testing.T, port int, path string) []byte {
	t.Helper()
	for {
		resp, err := http.Get(p.url(port, path))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 400 {
				return body
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited (%v) before %s answered", p.name, p.err, path)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitDial dials a port of the pod until it connects, as a tcpSocket
// probe does; it fails the test if the pod exits first.
func (p *pod) waitDial(t *testing.T, port int) {
	t.Helper()
	addr := net.JoinHostPort(p.ip, strconv.Itoa(port))
	for {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited (%v) before port %d opened", p.name, p.err, port)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// probePort returns the container port number a probe's port names.
func probePort(t *testing.T, c *container, port string) int {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(p.ContainerPort) == port {
			return p.ContainerPort
		}
	}
	t.Fatalf("probe port %q is no container port", port)
	return 0
}

// fakeAPIServer serves GET of StatefulSet dotkv in namespace deploytest
// with spec.replicas read from replicas, over TLS like the API server, and
// writes the service account directory the pods would have mounted.
func fakeAPIServer(t *testing.T, replicas *atomic.Int64) (env []string, saDir string) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sa-token" {
			http.Error(w, `{"kind":"Status","code":401}`, http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet || r.URL.Path != "/apis/apps/v1/namespaces/deploytest/statefulsets/dotkv" {
			http.Error(w, `{"kind":"Status","code":404}`, http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"kind":"StatefulSet","apiVersion":"apps/v1","metadata":{"name":"dotkv"},"spec":{"replicas":%d}}`, replicas.Load())
	}))
	t.Cleanup(srv.Close)
	saDir = t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	for name, content := range map[string][]byte{"token": []byte("sa-token\n"), "ca.crt": ca, "namespace": []byte("deploytest")} {
		if err := os.WriteFile(filepath.Join(saDir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return []string{"KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port}, saDir
}

// runPrestop runs the StatefulSet's preStop command in pod p (its
// 127.0.0.1 is the pod's own address) and returns its output.
func runPrestop(t *testing.T, kube string, c *container, p *pod, apiEnv []string, saDir string) (string, error) {
	t.Helper()
	args := slices.Clone(c.Lifecycle.PreStop.Exec.Command[1:])
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "127.0.0.1", p.ip)
	}
	args = append(args, "--serviceaccount="+saDir, "--poll=100ms")
	cmd := exec.Command(kube, args...)
	cmd.Env = append(slices.Concat(os.Environ(), apiEnv), "POD_NAME="+p.name, "POD_NAMESPACE=deploytest")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestManifestPodsRun starts two pods' commands as the StatefulSet runs
// them (dotkv-kube server and the manifest's flags, on loopback
// addresses), checks that every probe succeeds on the port the manifest
// names, that dotkv-0 forms the cluster and dotkv-1 joins it, and that the
// preStop hook leaves nothing on a restart and makes dotkv-1 leave when
// the StatefulSet is scaled to one replica.
func TestManifestPodsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dotkv servers: skipped in -short mode")
	}
	dotkv, kube := binaries(t)
	_, c := loadManifests(t).dotkvStatefulSet(t)

	// As the kubelet does: the startup probe until it succeeds, then the
	// others.
	checkProbes := func(p *pod) {
		t.Helper()
		for _, pr := range []struct {
			kind string
			h    *handler
		}{{"startupProbe", c.StartupProbe}, {"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}} {
			switch {
			case pr.h.HTTPGet != nil:
				body := p.waitProbe(t, probePort(t, c, pr.h.HTTPGet.Port), pr.h.HTTPGet.Path)
				t.Logf("%s %s: GET %s: %s", p.name, pr.kind, pr.h.HTTPGet.Path, bytes.TrimSpace(body))
			case pr.h.TCPSocket != nil:
				p.waitDial(t, probePort(t, c, pr.h.TCPSocket.Port))
				t.Logf("%s %s: TCP port %s open", p.name, pr.kind, pr.h.TCPSocket.Port)
			}
		}
	}

	p0 := startPod(t, dotkv, kube, c, 0)
	checkProbes(p0) // ready: it formed the cluster (--new-cluster from dotkv-kube)
	var health struct{ Status, Node, Version string }
	if err := json.Unmarshal(p0.waitProbe(t, probePort(t, c, c.ReadinessProbe.HTTPGet.Port), "/healthz"), &health); err != nil {
		t.Fatal(err)
	}
	if health.Status != "ok" || health.Node != "dotkv-0" {
		t.Errorf("dotkv-0 /healthz: %+v, want status ok, node dotkv-0", health)
	}
	// The version reaches /healthz once node passes it to api.Config.
	if health.Version != testVersion {
		t.Errorf("dotkv-0 /healthz version %q, want %q (the -X main.version of the build)", health.Version, testVersion)
	}

	p1 := startPod(t, dotkv, kube, c, 1)
	checkProbes(p1) // ready: it joined dotkv-0 and holds its partitions

	var replicas atomic.Int64
	replicas.Store(2)
	apiEnv, saDir := fakeAPIServer(t, &replicas)
	// A restart (replicas unchanged): nobody leaves.
	for _, p := range []*pod{p0, p1} {
		out, err := runPrestop(t, kube, c, p, apiEnv, saDir)
		if err != nil || !strings.Contains(out, "not leaving") {
			t.Fatalf("preStop of %s with 2 replicas: %v\n%s", p.name, err, out)
		}
		t.Logf("preStop of %s, 2 replicas:\n%s", p.name, out)
	}
	// Scaled to 1: dotkv-1 leaves, and its server exits 0 once it has.
	replicas.Store(1)
	out, err := runPrestop(t, kube, c, p1, apiEnv, saDir)
	if err != nil || !strings.Contains(out, "left the cluster") {
		t.Fatalf("preStop of dotkv-1 scaled away: %v\n%s", err, out)
	}
	t.Logf("preStop of dotkv-1, 1 replica:\n%s", out)
	<-p1.exited
	if p1.err != nil {
		t.Errorf("dotkv-1 after its leave: %v, want exit 0", p1.err)
	}
	// dotkv-0 serves on, alone.
	resp, err := http.Get(p0.url(probePort(t, c, c.ReadinessProbe.HTTPGet.Port), "/cluster/status"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	status, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(status), `"left"`) {
		t.Errorf("dotkv-0's /cluster/status does not show dotkv-1 left:\n%s", status)
	}
	p0.waitProbe(t, probePort(t, c, c.ReadinessProbe.HTTPGet.Port), c.ReadinessProbe.HTTPGet.Path)
}

// TestPodmanScriptSyntax checks that deploy/podman/cluster.sh parses
// (running it needs podman: see the script).
func TestPodmanScriptSyntax(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	if out, err := exec.Command(bash, "-n", "podman/cluster.sh").CombinedOutput(); err != nil {
		t.Fatalf("bash -n podman/cluster.sh: %v\n%s", err, out)
	}
}
