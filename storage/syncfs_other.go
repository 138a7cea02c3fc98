//go:build !linux

package storage

import (
	"io/fs"
	"os"
	"path/filepath"
)

// syncFS fsyncs every file and directory under dir: the portable, slower
// stand-in for Linux's syncfs(2).
func syncFS(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
}
