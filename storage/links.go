package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// Sentinel errors about blocks and CIDs.
var (
	ErrUnsupportedCID = errors.New("storage: unsupported CID (want CIDv1, raw or dag-cbor, sha2-256)")
	ErrMalformedBlock = errors.New("storage: malformed dag-cbor block")
	ErrBlockTooLarge  = errors.New("storage: block too large")
	ErrCIDMismatch    = errors.New("storage: data does not match CID")
)

// MaxBlockSize is the largest block the store accepts and the exchange
// carries: chunks (1 MiB by default) and manifest nodes stay well below it.
const MaxBlockSize = 4 << 20

// maxLinkNesting bounds how deep a dag-cbor block may nest, so a small
// hostile block cannot make the link walker recurse deeply.
const maxLinkNesting = 64

// CheckCID reports whether c is a CID the store handles: CIDv1 with the raw
// or dag-cbor codec over a 32-byte sha2-256 digest.
func CheckCID(c cid.Cid) error {
	if !c.Defined() || c.Version() != 1 {
		return ErrUnsupportedCID
	}
	if codec := c.Type(); codec != cid.Raw && codec != cid.DagCBOR {
		return ErrUnsupportedCID
	}
	p := c.Prefix()
	if p.MhType != mh.SHA2_256 || p.MhLength != 32 {
		return ErrUnsupportedCID
	}
	return nil
}

// Links returns the CIDs a block links to, in order of appearance
// (duplicates kept): none for a raw block, every dag-cbor link (tag 42) for a
// dag-cbor block. It checks that a dag-cbor block is one well-formed CBOR
// item of definite lengths with at most MaxLinks links, each a CID the store
// handles; it does not check data against c.
func Links(c cid.Cid, data []byte) ([]cid.Cid, error) {
	if err := CheckCID(c); err != nil {
		return nil, err
	}
	if c.Type() == cid.Raw {
		return nil, nil
	}
	w := linkWalker{data: data}
	end, err := w.item(0, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedBlock, err)
	}
	if end != len(data) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformedBlock, len(data)-end)
	}
	return w.links, nil
}

// linkWalker scans CBOR without decoding it into values, collecting tag-42
// links. It allocates only the link list.
type linkWalker struct {
	data  []byte
	links []cid.Cid
}

// head reads an item's initial byte and argument at pos.
func (w *linkWalker) head(pos int) (major byte, arg uint64, next int, err error) {
	if pos >= len(w.data) {
		return 0, 0, 0, errors.New("unexpected end")
	}
	b := w.data[pos]
	major, ai := b>>5, b&31
	pos++
	var n int
	switch {
	case ai < 24:
		return major, uint64(ai), pos, nil
	case ai == 24:
		n = 1
	case ai == 25:
		n = 2
	case ai == 26:
		n = 4
	case ai == 27:
		n = 8
	case ai == 31:
		return 0, 0, 0, errors.New("indefinite length")
	default:
		return 0, 0, 0, fmt.Errorf("reserved additional info %d", ai)
	}
	if len(w.data)-pos < n {
		return 0, 0, 0, errors.New("unexpected end")
	}
	var buf [8]byte
	copy(buf[8-n:], w.data[pos:pos+n])
	return major, binary.BigEndian.Uint64(buf[:]), pos + n, nil
}

// item walks one CBOR item at pos and returns the position after it.
func (w *linkWalker) item(pos, depth int) (int, error) {
	if depth > maxLinkNesting {
		return 0, errors.New("nested too deeply")
	}
	start := pos
	major, arg, pos, err := w.head(pos)
	if err != nil {
		return 0, err
	}
	rest := uint64(len(w.data) - pos)
	switch major {
	case 0, 1: // integers: the head is all
		return pos, nil
	case 7: // simple values and floats
		if w.data[start] == 0xf8 && arg < 32 { // RFC 8949 3.3: not well-formed
			return 0, errors.New("two-byte simple value below 32")
		}
		return pos, nil
	case 2, 3: // byte and text strings
		if arg > rest {
			return 0, errors.New("string runs past the end")
		}
		end := pos + int(arg)
		if major == 3 && !utf8.Valid(w.data[pos:end]) {
			return 0, errors.New("text string is not UTF-8")
		}
		return end, nil
	case 4, 5: // arrays and maps
		n := arg
		if major == 5 {
			if n > rest {
				return 0, errors.New("map runs past the end")
			}
			n *= 2
		}
		if n > rest { // every item takes at least one byte
			return 0, errors.New("array runs past the end")
		}
		for range n {
			if pos, err = w.item(pos, depth+1); err != nil {
				return 0, err
			}
		}
		return pos, nil
	default: // 6: tag
		if arg != 42 {
			return w.item(pos, depth+1)
		}
		m, n, start, err := w.head(pos)
		if err != nil {
			return 0, err
		}
		if m != 2 {
			return 0, errors.New("link (tag 42) is not a byte string")
		}
		if n > uint64(len(w.data)-start) {
			return 0, errors.New("link runs past the end")
		}
		end := start + int(n)
		b := w.data[start:end]
		if len(b) < 2 || b[0] != 0 {
			return 0, errors.New("link without multibase identity prefix")
		}
		used, c, err := cid.CidFromBytes(b[1:])
		if err != nil {
			return 0, fmt.Errorf("link: %v", err)
		}
		if used != len(b)-1 {
			return 0, errors.New("link has trailing bytes")
		}
		if err := CheckCID(c); err != nil {
			return 0, fmt.Errorf("link %s: %v", c, err)
		}
		if len(w.links) == MaxLinks {
			return 0, fmt.Errorf("more than %d links", MaxLinks)
		}
		w.links = append(w.links, c)
		return end, nil
	}
}
