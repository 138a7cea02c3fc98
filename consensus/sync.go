package consensus

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/protocol"
)

// Block sync is a request/response stream protocol ("blocksync"): the
// client writes one frame with a SyncRequest, the server answers with one
// frame per StoredBlock, in height order, and closes the stream. A frame is
// a uvarint length and that many bytes of CBOR. The client checks every
// block's certificate against the validator set of its height and applies
// it through the ledger before asking for more.
const syncProtocol = "blocksync"

// Sync limits.
const (
	maxSyncBlocks = 128
	maxSyncFrame  = protocol.MaxEnvelope + 64<<10
	syncTimeout   = 30 * time.Second
)

// SyncRequest asks for the blocks From .. From+Count-1.
type SyncRequest struct {
	From  uint64 `cbor:"1,keyasint"`
	Count uint32 `cbor:"2,keyasint"`
}

func writeFrame(w io.Writer, b []byte) error {
	var l [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(l[:], uint64(len(b)))
	if _, err := w.Write(l[:n]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func readFrame(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > maxSyncFrame {
		return nil, fmt.Errorf("%w: frame of %d bytes", ErrBadRequest, n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

// serveSync answers one SyncRequest from the block store.
func (s *Service) serveSync(st network.Stream) {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(syncTimeout))
	req, err := readFrame(bufio.NewReader(io.LimitReader(st, 64)))
	if err != nil {
		_ = st.Reset()
		return
	}
	var q SyncRequest
	if err := protocol.Unmarshal(req, &q); err != nil || q.From == 0 {
		_ = st.Reset()
		return
	}
	top := s.Height()
	w := bufio.NewWriter(st)
	for h := q.From; h < q.From+uint64(min(q.Count, maxSyncBlocks)) && h <= top; h++ {
		v, err := s.cfg.KV.Get(u64key(prefixBlock, h))
		if err != nil {
			break
		}
		if err := writeFrame(w, v); err != nil {
			_ = st.Reset()
			return
		}
	}
	_ = w.Flush()
}

// fetchBlocks asks p for up to count blocks from height from.
func (s *Service) fetchBlocks(ctx context.Context, p peer.ID, from uint64, count uint32) ([]*StoredBlock, error) {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	st, err := s.cfg.Network.NewStream(ctx, p, syncProtocol)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	if err := writeFrame(st, protocol.MustMarshal(&SyncRequest{From: from, Count: count})); err != nil {
		_ = st.Reset()
		return nil, err
	}
	_ = st.CloseWrite()
	r := bufio.NewReader(st)
	var out []*StoredBlock
	for len(out) < int(count) {
		b, err := readFrame(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, err
		}
		var sb StoredBlock
		if err := protocol.Unmarshal(b, &sb); err != nil {
			return out, fmt.Errorf("%w: block from %s: %w", ErrBadCommit, p, err)
		}
		out = append(out, &sb)
	}
	return out, nil
}

// maybeSync starts a block-sync round when a peer is known to be ahead.
// Runs on the loop; the fetch runs in its own goroutine and posts the
// blocks back, where each is verified and applied in order.
func (s *Service) maybeSync() {
	if s.cfg.Network == nil || s.syncing.Load() {
		return
	}
	cur := s.eng.height()
	target := s.maxSeen.Load()
	pp := s.maxSeenPeer.Load()
	if target < cur || pp == nil {
		return
	}
	// A height being decided right now is better left to consensus; sync
	// only when the peer has committed it (target >= cur) and we are idle
	// or behind by more than one.
	if target == cur && time.Since(s.heightSince) < 2*s.cfg.SyncInterval {
		return
	}
	p := *pp
	s.syncing.Store(true)
	count := uint32(min(target-cur+1, maxSyncBlocks))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		blocks, err := s.fetchBlocks(s.ctx, p, cur, count)
		if err != nil && s.ctx.Err() == nil {
			s.log.Debug("consensus: block sync", "peer", p, "err", err)
		}
		s.post(func() {
			defer s.syncing.Store(false)
			s.applySynced(blocks, p)
		})
	}()
}

func (s *Service) applySynced(blocks []*StoredBlock, from peer.ID) {
	applied := 0
	for _, sb := range blocks {
		out, err := s.eng.applyCommitted(sb)
		if out == nil {
			s.handle(nil, err)
			return
		}
		if err != nil {
			s.log.Warn("consensus: bad block from sync peer", "peer", from, "err", err)
			break
		}
		for _, c := range out.committed {
			s.onCommitted(c)
			applied++
		}
		if len(out.committed) == 0 {
			continue
		}
		// Each applied block moves the machine on at once: the next
		// synced block needs the new height's state.
		s.eng.waiting = true
		nx, err := s.eng.startNext()
		if nx == nil {
			s.handle(nil, err)
			return
		}
		s.handle(nx, nil)
	}
	if applied > 0 {
		s.log.Debug("consensus: block sync", "peer", from, "applied", applied, "height", s.eng.state.Height())
	}
	s.publishView()
}
