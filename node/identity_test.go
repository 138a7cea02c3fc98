package node

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestInitKeyRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "home", KeyFileName)
	key, err := InitKey(path)
	if err != nil {
		t.Fatalf("InitKey: %v", err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InitKey(path); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("second InitKey = %v, want ErrKeyExists", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("second InitKey changed the key file")
	}
	loaded, err := LoadKey(path)
	if err != nil {
		t.Fatalf("LoadKey: %v", err)
	}
	if !loaded.Equals(key) {
		t.Fatal("loaded key differs from the created one")
	}
}

func TestInitKeyMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), KeyFileName)
	if _, err := InitKey(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Fatalf("key file mode %#o, want 0600", got)
	}
}

func TestLoadKeySamePeerID(t *testing.T) {
	path := filepath.Join(t.TempDir(), KeyFileName)
	key, err := InitKey(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := PeerIDFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		k, err := LoadKey(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := PeerIDFromKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("load %d: peer ID %s, want %s", i, got, want)
		}
	}
}

func TestLoadKeyRejects(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	if _, err := InitKey(good); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpData, err := crypto.MarshalPrivateKey(secp)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		mode os.FileMode
		want error
	}{
		{"group readable", data, 0o640, ErrKeyPerm},
		{"world readable", data, 0o604, ErrKeyPerm},
		{"group writable", data, 0o620, ErrKeyPerm},
		{"secp256k1", secpData, 0o600, ErrKeyType},
		{"garbage", []byte("not a key"), 0o600, ErrKeyType},
		{"empty", nil, 0o600, ErrKeyType},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, tc.data, tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil { // undo the umask
			t.Fatal(err)
		}
		if _, err := LoadKey(path); !errors.Is(err, tc.want) {
			t.Errorf("LoadKey(%s) = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := LoadKey(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadKey(missing) = %v, want not-exist", err)
	}
}

// FuzzParseKey: any bytes give an Ed25519 key or ErrKeyType, never a panic.
func FuzzParseKey(f *testing.F) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	good, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x02, 0x12, 0x20})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKey(data)
		if err != nil {
			if !errors.Is(err, ErrKeyType) {
				t.Fatalf("error %v is not ErrKeyType", err)
			}
			return
		}
		if _, err := PeerIDFromKey(k); err != nil {
			t.Fatalf("parsed key has no peer ID: %v", err)
		}
	})
}
