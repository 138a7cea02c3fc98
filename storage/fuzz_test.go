package storage

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/gpunode/gpunode/protocol"
	"github.com/ipfs/go-cid"
)

// seedNodes are valid manifest nodes of every type, encoded.
func seedNodes(t testing.TB) [][]byte {
	chunk := protocol.NewCID(protocol.BlockCID([]byte("chunk")))
	sub := protocol.NewCID(protocol.DagCBORCID([]byte("sub")))
	nodes := []*Node{
		{Type: NodeFile, Name: "empty", Mode: 0o644},
		{Type: NodeFile, Name: "f", Size: 10, Mode: 0o600, Links: []Link{{CID: chunk, Size: 5}, {CID: chunk, Size: 5}}},
		{Type: NodeFile, Size: 1 << 30, Links: []Link{{CID: sub, Size: 1 << 30}}},
		{Type: NodeChunks, Size: 7, Links: []Link{{CID: chunk, Size: 3}, {CID: sub, Size: 4}}},
		{Type: NodeDir, Name: "data", Size: 9, Mode: 0o755, Links: []Link{{CID: sub, Size: 4, Name: "a"}, {CID: sub, Size: 5, Name: "b c"}}},
	}
	var out [][]byte
	for _, n := range nodes {
		data, _, err := EncodeNode(n)
		if err != nil {
			t.Fatalf("seed %+v: %v", n, err)
		}
		out = append(out, data)
	}
	return out
}

// FuzzDecodeNode: any input either fails with ErrBadManifest (or
// ErrBlockTooLarge) or is a node whose encoding is exactly the input and
// whose links are exactly what Links finds in the block.
func FuzzDecodeNode(f *testing.F) {
	for _, s := range seedNodes(f) {
		f.Add(s)
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x01, 0x64, 'f', 'i', 'l', 'e'})
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := DecodeNode(data)
		if err != nil {
			if !errors.Is(err, ErrBadManifest) && !errors.Is(err, ErrBlockTooLarge) {
				t.Fatalf("DecodeNode error %v is neither ErrBadManifest nor ErrBlockTooLarge", err)
			}
			return
		}
		again, c, err := EncodeNode(n)
		if err != nil {
			t.Fatalf("decoded node does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("decode/encode changed the bytes:\n in %x\nout %x", data, again)
		}
		links, err := Links(c, data)
		if err != nil {
			t.Fatalf("Links of a valid node: %v", err)
		}
		var want []cid.Cid
		for _, l := range n.Links {
			want = append(want, l.CID.Cid)
		}
		if !slices.Equal(links, want) {
			t.Fatalf("Links = %v; node links %v", links, want)
		}
	})
}

// strictWellformed is the CBOR well-formedness Links promises to check:
// definite lengths only.
var strictWellformed, _ = cbor.DecOptions{IndefLength: cbor.IndefLengthForbidden, MaxNestedLevels: maxLinkNesting + 2}.DecMode()

// FuzzLinks: Links never panics, accepts only well-formed CBOR (checked
// against fxamacker/cbor) and returns only CIDs the store handles.
func FuzzLinks(f *testing.F) {
	for _, s := range seedNodes(f) {
		f.Add(s)
	}
	f.Add([]byte{0xd8, 0x2a, 0x41, 0x00})                   // tag 42 over one zero byte
	f.Add([]byte{0x9f, 0xff})                               // indefinite array
	f.Add([]byte{0xc2, 0x41, 0x01})                         // bignum tag
	f.Add([]byte{0x82, 0x01})                               // truncated array
	f.Add(bytes.Repeat([]byte{0x81}, maxLinkNesting+5))     // deep nesting
	f.Add([]byte{0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // huge map header
	f.Fuzz(func(t *testing.T, data []byte) {
		c := protocol.DagCBORCID(data)
		links, err := Links(c, data)
		if err != nil {
			if !errors.Is(err, ErrMalformedBlock) {
				t.Fatalf("Links error %v is not ErrMalformedBlock", err)
			}
			return
		}
		if err := strictWellformed.Wellformed(data); err != nil {
			t.Fatalf("Links accepted CBOR that fxamacker rejects: %v", err)
		}
		for _, l := range links {
			if err := CheckCID(l); err != nil {
				t.Fatalf("Links returned unsupported CID %s", l)
			}
		}
		// Raw blocks never have links, whatever their bytes.
		if l, err := Links(protocol.BlockCID(data), data); err != nil || l != nil {
			t.Fatalf("Links(raw) = %v, %v", l, err)
		}
	})
}

// FuzzIndexEntry: the index decoder never panics and round-trips what it
// accepts.
func FuzzIndexEntry(f *testing.F) {
	f.Add(indexEntry{size: 5}.encode())
	f.Add(indexEntry{size: 100, links: []cid.Cid{protocol.BlockCID([]byte("a")), protocol.DagCBORCID([]byte("b"))}}.encode())
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeIndexEntry(data)
		if err != nil {
			return
		}
		e2, err := decodeIndexEntry(e.encode())
		if err != nil || e2.size != e.size || !slices.Equal(e2.links, e.links) {
			t.Fatalf("round trip: %+v -> %+v, %v", e, e2, err)
		}
	})
}
