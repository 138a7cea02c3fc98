package node

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestNormalizeDefaults(t *testing.T) {
	c := Config{Network: "devnet"}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"ChainID", c.ChainID, "devnet"},
		{"ListenAddrs", c.ListenAddrs, []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}},
		{"DHTMode", c.DHTMode, DHTServer},
		{"DHTRefreshInterval", c.DHTRefreshInterval.D(), 10 * time.Minute},
		{"BootstrapTimeout", c.BootstrapTimeout.D(), DefaultBootstrapTimeout},
		{"ConnMgr", c.ConnMgr, ConnMgrConfig{Low: 100, High: 400, Grace: Duration(time.Minute)}},
		{"PubSub.ValidateQueueSize", c.PubSub.ValidateQueueSize, DefaultValidateQueueSize},
		{"PubSub.PeerOutboundQueueSize", c.PubSub.PeerOutboundQueueSize, DefaultPeerOutboundQueue},
		{"PubSub.SubscriptionBuffer", c.PubSub.SubscriptionBuffer, DefaultSubscriptionBuffer},
		{"MDNS", c.MDNS, false},
		{"RelayService", c.RelayService, false},
		{"Logger set", c.Logger != nil, true},
		{"Now set", c.Now != nil, true},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestNormalizeKeepsSetValues(t *testing.T) {
	c := Config{Network: "testnet-1", ChainID: "chain-7", DHTMode: DHTClient,
		ConnMgr: ConnMgrConfig{Low: 5, High: 10, Grace: Duration(time.Second)}}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	if c.ChainID != "chain-7" || c.DHTMode != DHTClient || c.ConnMgr.Low != 5 || c.ConnMgr.High != 10 || c.ConnMgr.Grace.D() != time.Second {
		t.Fatalf("Normalize overwrote set values: %+v", c)
	}
}

func TestNormalizeRejects(t *testing.T) {
	const peerAddr = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGRUVh7SPBhzvPXmPHcdBjUgVHXHDnD6z8ug1wwxYmPYJ"
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"no network", func(c *Config) { c.Network = "" }},
		{"bad network", func(c *Config) { c.Network = "Dev Net" }},
		{"bad dht mode", func(c *Config) { c.DHTMode = "auto" }},
		{"bad listen addr", func(c *Config) { c.ListenAddrs = []string{"127.0.0.1:4001"} }},
		{"quic listen without quic", func(c *Config) {
			c.DisableQUIC = true
			c.ListenAddrs = []string{"/ip4/0.0.0.0/udp/4001/quic-v1"}
		}},
		{"bootstrap without /p2p", func(c *Config) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001"} }},
		{"bootstrap not a multiaddr", func(c *Config) { c.Bootstrap = []string{peerAddr, "nonsense"} }},
		{"low above high", func(c *Config) { c.ConnMgr = ConnMgrConfig{Low: 50, High: 10} }},
		{"max conns below high water", func(c *Config) { c.Resources.MaxConns = 100 }},
		{"negative memory", func(c *Config) { c.Resources.MaxMemoryMiB = -1 }},
		{"negative queue", func(c *Config) { c.PubSub.ValidateQueueSize = -1 }},
	} {
		c := Config{Network: "devnet", Bootstrap: []string{peerAddr}}
		if ok := c; ok.Normalize() != nil {
			t.Fatalf("base config invalid: %v", ok.Normalize())
		}
		tc.mod(&c)
		before := c
		err := c.Normalize()
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Normalize = %v, want ErrConfig", tc.name, err)
		}
		if !reflect.DeepEqual(before, c) {
			t.Errorf("%s: failed Normalize changed the config", tc.name)
		}
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("90s")); err != nil || d.D() != 90*time.Second {
		t.Fatalf("UnmarshalText(90s) = %v, %v", d, err)
	}
	b, err := d.MarshalText()
	if err != nil || string(b) != "1m30s" {
		t.Fatalf("MarshalText = %q, %v; want 1m30s", b, err)
	}
	for _, bad := range []string{"", "ten minutes", "-1s"} {
		if err := d.Set(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("Set(%q) = %v, want ErrConfig", bad, err)
		}
	}
	if d.D() != 90*time.Second {
		t.Errorf("failed Set changed the value to %v", d)
	}
}

// FuzzDuration: any text gives a non-negative duration that round-trips, or
// ErrConfig and no change.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{"90s", "1h2m3.5s", "0", "-1s", "", "1e9", "10x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := Duration(42)
		if err := d.UnmarshalText([]byte(s)); err != nil {
			if !errors.Is(err, ErrConfig) || d != 42 {
				t.Fatalf("UnmarshalText(%q) = %v, value %v", s, err, d)
			}
			return
		}
		if d < 0 {
			t.Fatalf("UnmarshalText(%q) gave negative %v", s, d)
		}
		text, _ := d.MarshalText()
		var back Duration
		if err := back.UnmarshalText(text); err != nil || back != d {
			t.Fatalf("round trip of %v: %v, %v", d, back, err)
		}
	})
}
