package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Files the server keeps in the data directory.
const (
	// TokenFile holds the bearer token for mutating calls, mode 0600.
	TokenFile = "api.token"
	// URLFile holds the base URL of the running server (e.g.
	// http://127.0.0.1:8645), written at Start and removed at Shutdown, so
	// the CLI finds a daemon listening on a configured or random port. A
	// bare host:port in it is read as http://host:port.
	URLFile = "api.url"
)

// Token file errors.
var (
	ErrTokenFile = errors.New("api: bad token file")
	ErrNoServer  = errors.New("api: no running server recorded in the data directory")
)

// minTokenLen guards against a truncated or hand-edited token file: a
// generated token is 64 hex characters (256 bits).
const minTokenLen = 32

// LoadOrCreateToken returns the API token of dataDir, creating it on first
// use: 32 bytes from random, hex-encoded, in dataDir/api.token with mode
// 0600. The file appears atomically (written aside, then hard-linked into
// place), so a concurrent start or a crash never leaves a half-written token.
// random is crypto/rand.Reader when nil.
func LoadOrCreateToken(dataDir string, random io.Reader) (string, error) {
	if random == nil {
		random = rand.Reader
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("api: create data dir: %w", err)
	}
	path := filepath.Join(dataDir, TokenFile)
	if _, err := os.Lstat(path); err == nil {
		return ReadToken(dataDir)
	}
	buf := make([]byte, 32)
	if _, err := io.ReadFull(random, buf); err != nil {
		return "", fmt.Errorf("api: generate token: %w", err)
	}
	token := hex.EncodeToString(buf)
	tmp, err := os.CreateTemp(dataDir, ".api.token-*")
	if err != nil {
		return "", fmt.Errorf("api: write token: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600 already; Chmod states the intent.
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.WriteString(token + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("api: write token: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) { // another process won the race
			return ReadToken(dataDir)
		}
		return "", fmt.Errorf("api: write token: %w", err)
	}
	return token, nil
}

// ReadToken reads the API token of dataDir. It refuses a token file that
// others than the owner can read or write, like ssh does with keys.
func ReadToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, TokenFile)
	fi, err := os.Lstat(path)
	if err != nil {
		return "", fmt.Errorf("api: read token: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a regular file", ErrTokenFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%w: %s has mode %04o, want 0600", ErrTokenFile, path, perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("api: read token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < minTokenLen || strings.ContainsAny(token, " \t\r\n") {
		return "", fmt.Errorf("%w: %s does not hold a token (delete it to make a new one)", ErrTokenFile, path)
	}
	return token, nil
}

// ReadURL reads the base URL the running server of dataDir recorded.
func ReadURL(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, URLFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w (is the daemon running with --home %s?)", ErrNoServer, dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("api: read URL: %w", err)
	}
	u := strings.TrimSpace(string(b))
	if u == "" {
		return "", fmt.Errorf("%w: %s is empty", ErrNoServer, URLFile)
	}
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return u, nil
}

// writeFileAtomic writes data to path through a temporary file and a rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(perm)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
