package exchange

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/gpunode/gpunode/protocol"
	"github.com/libp2p/go-libp2p/core/network"
)

func TestRequestRoundTrip(t *testing.T) {
	d := makeDAG(t, 3, 16, 3)
	req := &Request{Root: protocol.NewCID(d.root), Wants: []protocol.CID{protocol.NewCID(d.chunks[0]), protocol.NewCID(d.chunks[2])}}
	b, err := EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Root.Equals(d.root) || len(got.Wants) != 2 || !got.Wants[1].Equals(d.chunks[2]) {
		t.Errorf("DecodeRequest(EncodeRequest(r)) = %+v", got)
	}
}

func TestDecodeRequestRejects(t *testing.T) {
	d := makeDAG(t, 1, 16, 1)
	root := protocol.NewCID(d.root)
	many := make([]protocol.CID, MaxWants+1)
	for i := range many {
		many[i] = root
	}
	good := protocol.MustMarshal(&Request{Root: root, Wants: []protocol.CID{root}})
	for _, tc := range []struct {
		name string
		body []byte
		want error
	}{
		{"empty", nil, ErrBadRequest},
		{"garbage", []byte("hello"), ErrBadRequest},
		{"no wants", protocol.MustMarshal(&Request{Root: root}), ErrBadRequest},
		{"no root", protocol.MustMarshal(map[int]any{2: []protocol.CID{root}}), ErrBadRequest},
		{"too many wants", protocol.MustMarshal(&Request{Root: root, Wants: many}), ErrTooLarge},
		{"unknown field", protocol.MustMarshal(map[int]any{1: root, 2: []protocol.CID{root}, 3: 1}), ErrBadRequest},
		{"trailing bytes", append(append([]byte(nil), good...), 0), ErrBadRequest},
		{"oversized", make([]byte, MaxRequestSize+1), ErrTooLarge},
	} {
		if _, err := DecodeRequest(tc.body); !errors.Is(err, tc.want) {
			t.Errorf("DecodeRequest(%s) error %v; want %v", tc.name, err, tc.want)
		}
	}
}

func TestDecodeResponseRejects(t *testing.T) {
	d := makeDAG(t, 1, 16, 1)
	c := protocol.NewCID(d.root)
	for _, tc := range []struct {
		name string
		r    any
		want error
	}{
		{"ok without CID", map[int]any{1: 0, 3: 10}, ErrBadResponse},
		{"unknown status", &Response{Status: 9, CID: &c}, ErrBadResponse},
		{"huge block", &Response{Status: StatusOK, CID: &c, Size: MaxBlockSize + 1}, ErrTooLarge},
		{"not found with data", &Response{Status: StatusNotFound, CID: &c, Size: 3}, ErrBadResponse},
		{"long message", &Response{Status: StatusDenied, Message: string(make([]byte, maxMessageLen+1))}, ErrBadResponse},
	} {
		if _, err := DecodeResponse(protocol.MustMarshal(tc.r)); !errors.Is(err, tc.want) {
			t.Errorf("DecodeResponse(%s) error %v; want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	d := makeDAG(f, 2, 16, 2)
	root := protocol.NewCID(d.root)
	f.Add(protocol.MustMarshal(&Request{Root: root, Wants: []protocol.CID{root, protocol.NewCID(d.chunks[1])}}))
	f.Add(protocol.MustMarshal(&Request{Root: root}))
	f.Add([]byte{0xa0})
	f.Add([]byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v is neither ErrBadRequest nor ErrTooLarge", err)
			}
			return
		}
		// Anything accepted is valid and re-encodes to the same bytes.
		again, err := EncodeRequest(r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted request re-encodes to %x, %v; input %x", again, err, b)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	d := makeDAG(f, 1, 16, 1)
	c := protocol.NewCID(d.root)
	f.Add(protocol.MustMarshal(&Response{Status: StatusOK, CID: &c, Size: 16}))
	f.Add(protocol.MustMarshal(&Response{Status: StatusNotFound, CID: &c}))
	f.Add(protocol.MustMarshal(&Response{Status: StatusDenied, Message: "no"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResponse(b)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v is neither ErrBadResponse nor ErrTooLarge", err)
			}
			return
		}
		again, err := EncodeResponse(r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted response re-encodes to %x, %v; input %x", again, err, b)
		}
	})
}

// rawStream opens an exchange stream from client to server for hand-made
// requests.
func rawStream(t *testing.T, client, server *node) (network.Stream, *bufio.Reader) {
	t.Helper()
	s, err := NewHost(client.h, testNet).NewStream(testCtx(t), server.h.ID(), ProtocolName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Reset() })
	return s, bufio.NewReader(s)
}

func sendRaw(t *testing.T, s network.Stream, frame []byte) {
	t.Helper()
	if _, err := s.Write(frame); err != nil {
		t.Fatal(err)
	}
}

func lenPrefixed(body []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
}

func readResponse(t *testing.T, r *bufio.Reader) (*Response, []byte) {
	t.Helper()
	h, err := readFrame(r, MaxHeaderSize, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	resp, err := DecodeResponse(h)
	if err != nil {
		t.Fatalf("decode response: %v", err)
	}
	data := make([]byte, resp.Size)
	if _, err := io.ReadFull(r, data); err != nil {
		t.Fatal(err)
	}
	return resp, data
}

// TestServerBadRequests sends the server malformed, oversized and
// unanswerable requests: each gets a clear answer, the server's store is
// unchanged and it keeps serving.
func TestServerBadRequests(t *testing.T) {
	ns := newNodes(t, 2)
	server, client := ns[0], ns[1]
	d := makeDAG(t, 4, 1<<10, 4)
	d.load(t, server.bs)
	other := makeDAG(t, 1, 1<<10, 1)
	other.load(t, server.bs)
	before := server.bs.len()
	root := protocol.NewCID(d.root)

	endsWithBadRequest := func(name string, frame []byte) {
		t.Helper()
		s, r := rawStream(t, client, server)
		sendRaw(t, s, frame)
		resp, _ := readResponse(t, r)
		if resp.Status != StatusBadRequest || resp.Message == "" {
			t.Errorf("%s: response %+v; want bad request with a message", name, resp)
		}
		if _, err := r.ReadByte(); err != io.EOF {
			t.Errorf("%s: stream not closed after a bad request: %v", name, err)
		}
	}
	endsWithBadRequest("garbage", lenPrefixed([]byte("not cbor")))
	endsWithBadRequest("oversized length", binary.AppendUvarint(nil, MaxRequestSize+1))
	many := make([]protocol.CID, MaxWants+1)
	for i := range many {
		many[i] = root
	}
	endsWithBadRequest("too many wants", lenPrefixed(protocol.MustMarshal(&Request{Root: root, Wants: many})))
	endsWithBadRequest("no wants", lenPrefixed(protocol.MustMarshal(&Request{Root: root})))

	// Unknown CIDs and CIDs of another DAG are not found; a block of the
	// DAG on the same stream is served.
	unknown := protocol.NewCID(protocol.BlockCID([]byte("nobody has this")))
	foreign := protocol.NewCID(other.chunks[0])
	chunk := protocol.NewCID(d.chunks[1])
	s, r := rawStream(t, client, server)
	body, err := EncodeRequest(&Request{Root: root, Wants: []protocol.CID{unknown, foreign, chunk}})
	if err != nil {
		t.Fatal(err)
	}
	sendRaw(t, s, lenPrefixed(body))
	for _, want := range []struct {
		c  protocol.CID
		st Status
	}{{unknown, StatusNotFound}, {foreign, StatusNotFound}, {chunk, StatusOK}} {
		resp, data := readResponse(t, r)
		if resp.Status != want.st || !resp.CID.Equals(want.c.Cid) {
			t.Errorf("answer for %s: %+v; want %s", want.c, resp, want.st)
		}
		if want.st == StatusOK && !bytes.Equal(data, d.blocks[chunk.Cid]) {
			t.Error("served block differs")
		}
	}
	if got := server.bs.len(); got != before {
		t.Errorf("server store has %d blocks after bad requests; want %d", got, before)
	}
	if len(server.bs.putCounts()) != 0 {
		t.Error("bad requests wrote to the server's store")
	}
	// The server still serves a normal fetch.
	if _, err := client.ex.Fetch(testCtx(t), d.root, ids(server)); err != nil {
		t.Fatalf("Fetch after bad requests: %v", err)
	}
}
