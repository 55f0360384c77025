package node_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/certs"
	"github.com/dotkv/dotkv/client"
	"github.com/dotkv/dotkv/node"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/storage"
)

// TestDefaultConfig: the defaults are valid, are the parts' own where they
// have them, and a zero configuration (with an ID) is valid too.
func TestDefaultConfig(t *testing.T) {
	def := node.DefaultConfig()
	def.ID = "n1"
	if err := def.Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	if err := (node.Config{ID: "n1"}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	if def.N != 3 || def.R != replica.Quorum || def.W != replica.Quorum || def.Fsync != storage.FsyncAlways {
		t.Errorf("N %d, R %v, W %v, fsync %v; want 3, quorum, quorum, always", def.N, def.R, def.W, def.Fsync)
	}
	if def.MaxValue != api.DefaultMaxValue || def.MaxSiblings != storage.DefaultMaxSiblings ||
		def.MaxRecordBytes != storage.DefaultMaxRecordBytes || def.MemTableSize != storage.DefaultMemTableSize {
		t.Errorf("MaxValue %d, MaxSiblings %d, MaxRecordBytes %d, MemTableSize %d: not the parts' defaults",
			def.MaxValue, def.MaxSiblings, def.MaxRecordBytes, def.MemTableSize)
	}
	if def.TransferLimit != 2 || def.TransferRate != 64<<20 || def.AAEInterval != 10*time.Second ||
		def.TombstoneGrace != time.Hour || def.MaxHints != 1_000_000 || def.MaxHintBytes != 1<<30 {
		t.Errorf("unexpected defaults %+v", def)
	}
}

// TestConfigValidate: each out-of-range field is refused, named, with
// ErrInvalidConfig; negative fields that mean "none" are accepted.
func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*node.Config)
		want string // in the error; "" for valid
	}{
		{"no bounds", func(c *node.Config) { c.MaxSiblings, c.WarnSiblings, c.TransferLimit, c.TransferRate = -1, -1, -1, -1 }, ""},
		{"numeric levels", func(c *node.Config) { c.N, c.R, c.W = 5, replica.Number(2), replica.Number(5) }, ""},
		{"bad id", func(c *node.Config) { c.ID = "a b" }, "node id"},
		{"N too big", func(c *node.Config) { c.N = node.MaxN + 1 }, "replication factor"},
		{"N negative", func(c *node.Config) { c.N = -1 }, "replication factor"},
		{"R above N", func(c *node.Config) { c.N, c.R = 3, replica.Number(4) }, "default r = 4"},
		{"W above default N", func(c *node.Config) { c.W = replica.Number(4) }, "default w = 4"},
		{"fsync", func(c *node.Config) { c.Fsync = 7 }, "fsync mode"},
		{"max value", func(c *node.Config) { c.MaxValue = -1 }, "max value"},
		{"max record", func(c *node.Config) { c.MaxRecordBytes = node.MaxRecordLimit + 1 }, "max record size"},
		{"negative record", func(c *node.Config) { c.MaxRecordBytes = -1 }, "max record size"},
		{"siblings", func(c *node.Config) { c.MaxSiblings, c.WarnSiblings = 10, 20 }, "above the bound"},
		{"hints", func(c *node.Config) { c.MaxHints = -1 }, "hint limits"},
		{"cache", func(c *node.Config) { c.CacheSize = 1 }, "cache size"},
		{"memtable", func(c *node.Config) { c.MemTableSize = 1 }, "memtable size"},
		{"aae interval", func(c *node.Config) { c.AAEInterval = -time.Second }, "anti-entropy interval"},
		{"aae keys", func(c *node.Config) { c.AAEKeysPerSec = -1 }, "keys per second"},
		{"grace", func(c *node.Config) { c.TombstoneGrace = -time.Second }, "tombstone grace"},
		{"hint interval", func(c *node.Config) { c.HintInterval = -time.Second }, "hint interval"},
		{"cleanup interval", func(c *node.Config) { c.CleanupInterval = -time.Second }, "cleanup interval"},
		{"tls", func(c *node.Config) { c.TLS = certs.Files{Cert: "c.pem"} }, "--tls-key"},
		{"advertised name", func(c *node.Config) { c.AdvertiseHTTP = "dotkv-0.dotkv.default.svc:8080" }, ""},
		{"advertised IPv6", func(c *node.Config) { c.AdvertiseHTTP = "[fd00::1]:8080" }, ""},
		{"advertised no port", func(c *node.Config) { c.AdvertiseHTTP = "db1" }, "advertised HTTP address"},
		{"advertised port 0", func(c *node.Config) { c.AdvertiseHTTP = "db1:0" }, "advertised HTTP address"},
		{"advertised unspecified", func(c *node.Config) { c.AdvertiseHTTP = "0.0.0.0:8080" }, "advertised HTTP address"},
	} {
		cfg := node.DefaultConfig()
		cfg.ID = "n1"
		c.mod(&cfg)
		err := cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want == "":
		case err == nil:
			t.Errorf("%s: accepted", c.name)
		case !errors.Is(err, node.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: %v, want ErrInvalidConfig and %q", c.name, err, c.want)
		}
	}
	// Every problem is named.
	err := node.Config{ID: "n1", N: -1, MaxValue: -1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "replication factor") || !strings.Contains(err.Error(), "max value") {
		t.Errorf("two problems: %v, want both named", err)
	}
}

// TestStartRefusesInvalidConfig: Start checks the configuration before it
// creates anything.
func TestStartRefusesInvalidConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	n, err := node.Start(node.Config{ID: "n1", DataDir: dir, HTTPAddr: "127.0.0.1:0", N: node.MaxN + 1})
	if err == nil {
		n.Close()
		t.Fatal("N above MaxN accepted")
	}
	if !errors.Is(err, node.ErrInvalidConfig) {
		t.Errorf("Start: %v, want ErrInvalidConfig", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory created (stat: %v)", err)
	}
}

// TestAdvertisedHTTPAddress: the cluster shows a node listening on every
// interface at its gossip host, and a node given --advertise-http at that
// address, in its membership and in /cluster/status.
func TestAdvertisedHTTPAddress(t *testing.T) {
	for _, c := range []struct {
		name, http, advertise string
		want                  func(bound string) string
	}{
		{"every interface", "0.0.0.0:0", "", func(bound string) string {
			_, port, _ := net.SplitHostPort(bound)
			return net.JoinHostPort("127.0.0.1", port)
		}},
		{"loopback", "127.0.0.1:0", "", func(bound string) string { return bound }},
		{"explicit", "127.0.0.1:0", "db1.example:8080", func(string) string { return "db1.example:8080" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, err := node.Start(node.Config{
				ID: "n1", DataDir: "data", FS: vfs.NewMem(), FastGossip: true, NewCluster: true,
				HTTPAddr: c.http, AdvertiseHTTP: c.advertise, GossipAddr: "127.0.0.1:0", RPCAddr: "127.0.0.1:0",
			})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			want := c.want(n.HTTPAddr())
			waitFor(t, "n1 to be a member", func() bool { return n.Membership().Ready() && len(n.Membership().Members()) == 1 })
			if got := n.Membership().Members()[0].HTTP; got != want {
				t.Errorf("membership shows HTTP %q, want %q (bound %s)", got, want, n.HTTPAddr())
			}
			_, port, _ := net.SplitHostPort(n.HTTPAddr())
			cl, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:" + port}})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.CloseIdleConnections()
			st, err := cl.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Members) != 1 || st.Members[0].HTTP != want {
				t.Errorf("/cluster/status members: %+v, want n1 at %q", st.Members, want)
			}
		})
	}
}
