package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// KeyFileName is the key file's name inside the data directory.
const KeyFileName = "node.key"

// Identity errors.
var (
	// ErrKeyExists: InitKey never overwrites a key, since the key is the
	// account and losing it loses the funds and stake behind it.
	ErrKeyExists = errors.New("node: key file already exists")
	// ErrKeyPerm: the key file is readable or writable by group or others.
	ErrKeyPerm = errors.New("node: key file permissions too open")
	// ErrKeyType: the key file does not hold an Ed25519 private key.
	ErrKeyType = errors.New("node: key is not an Ed25519 private key")
)

// InitKey creates a new Ed25519 key in path (libp2p's protobuf encoding),
// readable only by its owner (0600), creating missing parent directories
// with mode 0700. It refuses with ErrKeyExists if path exists, whatever it
// holds, and then leaves it untouched.
func InitKey(path string) (crypto.PrivKey, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("node: generate key: %w", err)
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("node: encode key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("node: create key directory: %w", err)
	}
	// O_EXCL makes the existence check and the creation one step: two
	// concurrent inits cannot both write.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %s", ErrKeyExists, path)
	}
	if err != nil {
		return nil, fmt.Errorf("node: create key file: %w", err)
	}
	// The umask cannot widen 0600, but Chmod makes the mode exact on
	// file systems that create with other defaults.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("node: chmod key file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("node: write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("node: sync key file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("node: close key file: %w", err)
	}
	return key, nil
}

// LoadKey reads the key written by InitKey. It refuses a file that group or
// others may read or write (ErrKeyPerm) and anything but an Ed25519 private
// key (ErrKeyType).
func LoadKey(path string) (crypto.PrivKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("node: key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("node: key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o, want 0600 (chmod 600 %s)", ErrKeyPerm, path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node: read key file: %w", err)
	}
	key, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return key, nil
}

// ParseKey decodes a key file's contents: an Ed25519 private key in
// libp2p's protobuf encoding. Anything else is ErrKeyType.
func ParseKey(data []byte) (crypto.PrivKey, error) {
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyType, err)
	}
	if key.Type() != pb.KeyType_Ed25519 {
		return nil, fmt.Errorf("%w: got a %s key", ErrKeyType, key.Type())
	}
	return key, nil
}

// PeerIDFromKey is the peer ID of key, which is also the account address.
func PeerIDFromKey(key crypto.PrivKey) (peer.ID, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("node: peer ID: %w", err)
	}
	return id, nil
}
