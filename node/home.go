package node

import "path/filepath"

// Files and directories inside a node's home (data) directory.
const (
	KeyFileName     = "node.key"    // Ed25519 identity, mode 0600; the peer ID is the account address
	ConfigFileName  = "config.toml" // settings shared by flags and environment
	TokenFileName   = "api.token"   // bearer token for mutating API calls, mode 0600
	APIAddrFileName = "api.addr"    // the API address of the running daemon, for the CLI
	DBDirName       = "db"          // badger: index, chain, market and pins
	BlocksDirName   = "blocks"      // content-addressed block files
)

// Home is a node's data directory.
type Home string

// KeyFile is the path of the identity key.
func (h Home) KeyFile() string { return filepath.Join(string(h), KeyFileName) }

// ConfigFile is the path of the config file.
func (h Home) ConfigFile() string { return filepath.Join(string(h), ConfigFileName) }

// TokenFile is the path of the API token.
func (h Home) TokenFile() string { return filepath.Join(string(h), TokenFileName) }

// APIAddrFile is where a running daemon writes its API address.
func (h Home) APIAddrFile() string { return filepath.Join(string(h), APIAddrFileName) }

// DBDir is the badger directory.
func (h Home) DBDir() string { return filepath.Join(string(h), DBDirName) }

// BlocksDir is the block file tree.
func (h Home) BlocksDir() string { return filepath.Join(string(h), BlocksDirName) }
