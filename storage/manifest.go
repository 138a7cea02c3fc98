package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"strings"
	"unicode/utf8"

	"github.com/gpunode/gpunode/protocol"
	"github.com/ipfs/go-cid"
)

// ErrBadManifest is returned for a manifest node that does not decode or
// breaks a rule of the format.
var ErrBadManifest = errors.New("storage: bad manifest")

// Manifest node types.
const (
	NodeFile   = "file"   // a file: Links are its content in order
	NodeDir    = "dir"    // a directory: Links are its entries, sorted by name
	NodeChunks = "chunks" // part of a large file's content: Links in order
)

// MaxLinks caps the links of any dag-cbor block the store accepts, and so
// of a manifest node: it keeps a node far below MaxBlockSize (a link encodes
// in about 50 bytes) and the index update of one block within one badger
// transaction of the low-memory profile.
const MaxLinks = 4096

// DefaultFanout is how many links Import puts in a manifest node before it
// starts a tree of NodeChunks nodes: 1024 chunks of 1 MiB, so a file node
// alone describes up to 1 GiB.
const DefaultFanout = 1024

// maxTreeDepth bounds how deep Export and Stat follow manifest nodes, so a
// hostile manifest cannot chain nodes without end.
const maxTreeDepth = 64

// Node is one manifest block, encoded as deterministic dag-cbor.
//
// The content of a file is the concatenation, in order, of what its Links
// point to: raw blocks (chunks) and NodeChunks nodes, which are read the same
// way. A directory's Links are its entries: a name and the CID of a file or
// directory node. Every Link carries the number of content bytes below it,
// and a node's Size is the sum of its Links' sizes.
type Node struct {
	Type  string `cbor:"1,keyasint"`
	Name  string `cbor:"2,keyasint,omitempty"` // set on import roots; entries are named by their Link
	Size  uint64 `cbor:"3,keyasint"`           // content bytes below this node
	Mode  uint32 `cbor:"4,keyasint,omitempty"` // permission bits (0o777) of a file or directory
	Links []Link `cbor:"5,keyasint,omitempty"`
}

// Link is a manifest node's reference to a block.
type Link struct {
	CID  protocol.CID `cbor:"1,keyasint"`
	Size uint64       `cbor:"2,keyasint"`           // content bytes below the link
	Name string       `cbor:"3,keyasint,omitempty"` // directory entries only
}

// Validate checks the node's rules: a known type, permission bits only,
// sizes that add up, chunk links to raw or dag-cbor blocks no larger than
// MaxBlockSize, directory entries with valid, unique, sorted names.
func (n *Node) Validate() error {
	if len(n.Links) > MaxLinks {
		return fmt.Errorf("%w: %d links > %d", ErrBadManifest, len(n.Links), MaxLinks)
	}
	if n.Mode&^uint32(fs.ModePerm) != 0 {
		return fmt.Errorf("%w: mode %#o has bits beyond the permissions", ErrBadManifest, n.Mode)
	}
	if n.Name != "" {
		if err := validName(n.Name); err != nil {
			return err
		}
	}
	switch n.Type {
	case NodeFile, NodeChunks:
		if n.Type == NodeChunks && (len(n.Links) == 0 || n.Name != "" || n.Mode != 0) {
			return fmt.Errorf("%w: chunks node must have links and no name or mode", ErrBadManifest)
		}
		for i, l := range n.Links {
			if l.Name != "" {
				return fmt.Errorf("%w: content link %d has a name", ErrBadManifest, i)
			}
			if err := CheckCID(l.CID.Cid); err != nil {
				return fmt.Errorf("%w: link %d: %v", ErrBadManifest, i, err)
			}
			if l.Size == 0 || (l.CID.Type() == cid.Raw && l.Size > MaxBlockSize) {
				return fmt.Errorf("%w: link %d has size %d", ErrBadManifest, i, l.Size)
			}
		}
	case NodeDir:
		for i, l := range n.Links {
			if err := validName(l.Name); err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
			if i > 0 && l.Name <= n.Links[i-1].Name {
				return fmt.Errorf("%w: entries not sorted or not unique at %q", ErrBadManifest, l.Name)
			}
			if err := CheckCID(l.CID.Cid); err != nil || l.CID.Type() != cid.DagCBOR {
				return fmt.Errorf("%w: entry %q does not link to a manifest node", ErrBadManifest, l.Name)
			}
		}
	default:
		return fmt.Errorf("%w: unknown node type %q", ErrBadManifest, n.Type)
	}
	var sum uint64
	for _, l := range n.Links {
		var carry uint64
		if sum, carry = bits.Add64(sum, l.Size, 0); carry != 0 {
			return fmt.Errorf("%w: sizes overflow", ErrBadManifest)
		}
	}
	if sum != n.Size {
		return fmt.Errorf("%w: links add up to %d bytes, node says %d", ErrBadManifest, sum, n.Size)
	}
	return nil
}

// validName accepts a single path element that is safe to create anywhere:
// no separators, no NUL, not "." or "..", valid UTF-8, at most 255 bytes.
func validName(s string) error {
	switch {
	case s == "" || s == "." || s == "..":
		return fmt.Errorf("%w: invalid name %q", ErrBadManifest, s)
	case len(s) > 255:
		return fmt.Errorf("%w: name of %d bytes > 255", ErrBadManifest, len(s))
	case strings.ContainsAny(s, "/\x00") || !utf8.ValidString(s):
		return fmt.Errorf("%w: invalid name %q", ErrBadManifest, s)
	}
	return nil
}

// EncodeNode validates n and returns its encoding and CID.
func EncodeNode(n *Node) ([]byte, cid.Cid, error) {
	if err := n.Validate(); err != nil {
		return nil, cid.Undef, err
	}
	data, err := protocol.Marshal(n)
	if err != nil {
		return nil, cid.Undef, err
	}
	if len(data) > MaxBlockSize {
		return nil, cid.Undef, fmt.Errorf("%w: manifest node of %d bytes", ErrBlockTooLarge, len(data))
	}
	return data, protocol.DagCBORCID(data), nil
}

// DecodeNode strictly decodes and validates a manifest node.
func DecodeNode(data []byte) (*Node, error) {
	if len(data) > MaxBlockSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrBlockTooLarge, len(data))
	}
	var n Node
	if err := protocol.Unmarshal(data, &n); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	if err := n.Validate(); err != nil {
		return nil, err
	}
	return &n, nil
}
