package exchange

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/gpunode/gpunode/protocol"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// ProtocolName is the stream protocol name; the full ID on a network is
// protocol.StreamProtocol(net, ProtocolName).
const ProtocolName = "exchange"

// Hard limits of the wire. A frame over a limit is rejected before any of
// its body is read or decoded.
const (
	// MaxWants caps the CIDs in one request.
	MaxWants = 256
	// MaxRequestSize caps an encoded request (MaxWants CIDs of up to ~100
	// bytes each fit with room to spare).
	MaxRequestSize = 32 << 10
	// MaxHeaderSize caps an encoded response header.
	MaxHeaderSize = 1 << 10
	// MaxBlockSize caps a block's bytes. Chunks are 1 MiB by default; the
	// limit leaves room for larger configured chunks and manifests.
	MaxBlockSize = 4 << 20
	// maxMessageLen caps the free-text message of an error response.
	maxMessageLen = 256
)

// Sentinel errors. Wrapped errors say which field or limit failed.
var (
	ErrBadRequest  = errors.New("exchange: bad request")
	ErrBadResponse = errors.New("exchange: bad response")
	ErrTooLarge    = errors.New("exchange: frame too large")
	ErrNotFound    = errors.New("exchange: block not found on any peer")
	ErrDenied      = errors.New("exchange: peer denied the request")
	ErrBadBlock    = errors.New("exchange: block does not match its CID")
	ErrNoPeers     = errors.New("exchange: no usable peers left")
)

// Request asks a peer for blocks of the DAG under Root. The server answers
// each want with one response frame, in order. Root lets the server apply
// its serving policy and check that every want belongs to that DAG.
type Request struct {
	Root  protocol.CID   `cbor:"1,keyasint"`
	Wants []protocol.CID `cbor:"2,keyasint"`
}

// Status is the outcome code of one response frame.
type Status uint8

// Response statuses. StatusOK is followed by Size bytes of block data; the
// others carry no data. StatusDenied and StatusBadRequest end the stream.
const (
	StatusOK         Status = 0
	StatusNotFound   Status = 1 // the server does not hold this block or it is not under the root
	StatusDenied     Status = 2 // the serving policy refuses this peer for this root
	StatusBadRequest Status = 3 // the request was malformed or over a limit
	StatusError      Status = 4 // the server failed to read the block
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNotFound:
		return "not found"
	case StatusDenied:
		return "denied"
	case StatusBadRequest:
		return "bad request"
	case StatusError:
		return "server error"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Response is the header of one response frame. The block bytes follow the
// header raw (not inside the CBOR), so a megabyte block is read straight
// into its buffer without a decode copy.
type Response struct {
	Status  Status        `cbor:"1,keyasint"`
	CID     *protocol.CID `cbor:"2,keyasint,omitempty"`
	Size    uint64        `cbor:"3,keyasint,omitempty"`
	Message string        `cbor:"4,keyasint,omitempty"`
}

// EncodeRequest checks the limits and encodes a request body (without the
// length prefix).
func EncodeRequest(r *Request) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	b, err := protocol.Marshal(r)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxRequestSize {
		return nil, fmt.Errorf("%w: request %d bytes > %d", ErrTooLarge, len(b), MaxRequestSize)
	}
	return b, nil
}

// DecodeRequest strictly decodes and validates a request body.
func DecodeRequest(b []byte) (*Request, error) {
	if len(b) > MaxRequestSize {
		return nil, fmt.Errorf("%w: request %d bytes > %d", ErrTooLarge, len(b), MaxRequestSize)
	}
	var r Request
	if err := protocol.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

func (r *Request) validate() error {
	if !r.Root.Defined() {
		return fmt.Errorf("%w: no root", ErrBadRequest)
	}
	if len(r.Wants) == 0 {
		return fmt.Errorf("%w: no wants", ErrBadRequest)
	}
	if len(r.Wants) > MaxWants {
		return fmt.Errorf("%w: %d wants > %d", ErrTooLarge, len(r.Wants), MaxWants)
	}
	for i, w := range r.Wants {
		if !w.Defined() {
			return fmt.Errorf("%w: want %d undefined", ErrBadRequest, i)
		}
	}
	return nil
}

// EncodeResponse checks and encodes a response header.
func EncodeResponse(r *Response) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	b, err := protocol.Marshal(r)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxHeaderSize {
		return nil, fmt.Errorf("%w: response header %d bytes > %d", ErrTooLarge, len(b), MaxHeaderSize)
	}
	return b, nil
}

// DecodeResponse strictly decodes and validates a response header.
func DecodeResponse(b []byte) (*Response, error) {
	if len(b) > MaxHeaderSize {
		return nil, fmt.Errorf("%w: response header %d bytes > %d", ErrTooLarge, len(b), MaxHeaderSize)
	}
	var r Response
	if err := protocol.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

func (r *Response) validate() error {
	if r.Status > StatusError {
		return fmt.Errorf("%w: unknown status %d", ErrBadResponse, r.Status)
	}
	if len(r.Message) > maxMessageLen {
		return fmt.Errorf("%w: message %d bytes > %d", ErrBadResponse, len(r.Message), maxMessageLen)
	}
	switch r.Status {
	case StatusOK:
		if r.CID == nil || !r.CID.Defined() {
			return fmt.Errorf("%w: block without CID", ErrBadResponse)
		}
		if r.Size > MaxBlockSize {
			return fmt.Errorf("%w: block %d bytes > %d", ErrTooLarge, r.Size, MaxBlockSize)
		}
	case StatusNotFound, StatusError:
		if r.CID == nil || !r.CID.Defined() {
			return fmt.Errorf("%w: %s without CID", ErrBadResponse, r.Status)
		}
		if r.Size != 0 {
			return fmt.Errorf("%w: %s with data", ErrBadResponse, r.Status)
		}
	default:
		if r.Size != 0 {
			return fmt.Errorf("%w: %s with data", ErrBadResponse, r.Status)
		}
	}
	return nil
}

// writeFrame writes a uvarint length prefix and body.
func writeFrame(w *bufio.Writer, body []byte) error {
	var lb [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(lb[:], uint64(len(body)))
	if _, err := w.Write(lb[:n]); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// readFrame reads a uvarint-length-prefixed body of at most max bytes into
// buf (grown if needed). A longer frame is rejected before its body is read.
func readFrame(r *bufio.Reader, max int, buf []byte) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: frame length: %v", ErrBadRequest, err)
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: frame %d bytes > %d", ErrTooLarge, n, max)
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("frame body: %w", noEOF(err))
	}
	return buf, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// hashSlice is how much of a block is hashed before verify yields the
// processor.
const hashSlice = 64 << 10

// verify reports whether data hashes to c. For sha2-256 (every CID the
// store takes) it hashes in slices and yields between them: hashing a
// megabyte takes a millisecond or more, and on a machine with few cores a
// goroutine that holds a processor that long starves the muxer's read and
// write loops, stalling the transfer the hash is part of.
func verify(c cid.Cid, data []byte) error {
	p := c.Prefix()
	if p.MhType == mh.SHA2_256 && p.MhLength == sha256.Size {
		h := sha256.New()
		for len(data) > 0 {
			n := min(len(data), hashSlice)
			h.Write(data[:n])
			data = data[n:]
			if len(data) > 0 {
				runtime.Gosched()
			}
		}
		dm, err := mh.Decode(c.Hash())
		if err != nil || !bytes.Equal(h.Sum(nil), dm.Digest) {
			return fmt.Errorf("%w: %s", ErrBadBlock, c)
		}
		return nil
	}
	got, err := p.Sum(data)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadBlock, err)
	}
	if !got.Equals(c) {
		return fmt.Errorf("%w: %s", ErrBadBlock, c)
	}
	return nil
}
