package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSettingsPrecedence checks that flags, environment and the config file
// agree on names and that flag > env > file > default.
func TestSettingsPrecedence(t *testing.T) {
	home := t.TempDir()
	file := `network = "from-file"
dht-mode = "client"
bootstrap = ["/ip4/127.0.0.1/tcp/1/p2p/12D3KooWfile"]
conn-high = 99
mdns = true
`
	if err := os.WriteFile(filepath.Join(home, configFile), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GPUNODE_DHT_MODE", "server")
	t.Setenv("GPUNODE_LOG_LEVEL", "debug")
	t.Setenv("GPUNODE_NETWORK", "from-env")

	cmd := newRunCmd()
	if err := cmd.ParseFlags([]string{"--home", home, "--network", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := applySettings(cmd, home); err != nil {
		t.Fatal(err)
	}
	get := func(n string) string { return cmd.Flags().Lookup(n).Value.String() }
	for _, c := range []struct{ name, want, why string }{
		{"network", "from-flag", "flag beats env and file"},
		{"dht-mode", "server", "env beats file"},
		{"log-level", "debug", "env beats default"},
		{"conn-high", "99", "file beats default"},
		{"mdns", "true", "file beats default"},
		{"bootstrap", "[/ip4/127.0.0.1/tcp/1/p2p/12D3KooWfile]", "file lists become flag lists"},
		{"api-listen", "127.0.0.1:8645", "default when nothing sets it"},
	} {
		if got := get(c.name); got != c.want {
			t.Errorf("--%s = %q, want %q (%s)", c.name, got, c.want, c.why)
		}
	}
}

func TestSettingsUnknownKey(t *testing.T) {
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, configFile), []byte("netwrk = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newRunCmd()
	if err := cmd.ParseFlags([]string{"--home", home}); err != nil {
		t.Fatal(err)
	}
	err := applySettings(cmd, home)
	if err == nil || !strings.Contains(err.Error(), `unknown setting "netwrk"`) {
		t.Fatalf("applySettings with a misspelt key = %v, want an unknown-setting error", err)
	}
}

// TestDefaultConfigRoundTrip checks that the file init writes is read back
// without error and sets what it says.
func TestDefaultConfigRoundTrip(t *testing.T) {
	home := t.TempDir()
	if err := writeDefaultConfig(filepath.Join(home, configFile), newRunCmd(), map[string]string{"network": "testnet-1"}); err != nil {
		t.Fatal(err)
	}
	cmd := newRunCmd()
	if err := cmd.ParseFlags([]string{"--home", home}); err != nil {
		t.Fatal(err)
	}
	if err := applySettings(cmd, home); err != nil {
		t.Fatalf("reading the generated config: %v", err)
	}
	if got := cmd.Flags().Lookup("network").Value.String(); got != "testnet-1" {
		t.Fatalf("network from generated config = %q, want testnet-1", got)
	}
	if err := writeDefaultConfig(filepath.Join(home, configFile), newRunCmd(), nil); err == nil {
		t.Fatal("writeDefaultConfig overwrote an existing file")
	}
}
