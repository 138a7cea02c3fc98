package node

import "path/filepath"

// Files and directories inside a node's home (data) directory, besides
// api.token and api.url, which the api package keeps.
const (
	ConfigFileName = "config.toml" // settings shared by flags and environment
	DBDirName      = "db"          // badger: index, chain, market and pins
	BlocksDirName  = "blocks"      // content-addressed block files
)

// Home is a node's data directory.
type Home string

// KeyFile is the path of the identity key.
func (h Home) KeyFile() string { return filepath.Join(string(h), KeyFileName) }

// ConfigFile is the path of the config file.
func (h Home) ConfigFile() string { return filepath.Join(string(h), ConfigFileName) }

// DBDir is the badger directory.
func (h Home) DBDir() string { return filepath.Join(string(h), DBDirName) }

// BlocksDir is the block file tree.
func (h Home) BlocksDir() string { return filepath.Join(string(h), BlocksDirName) }
