package exchange

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gpunode/gpunode/protocol"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestTransferFromTwoPeers(t *testing.T) {
	ns := newNodes(t, 3)
	d := makeDAG(t, 48, 64<<10, 8)
	d.load(t, ns[0].bs)
	d.load(t, ns[1].bs)
	fetcher := ns[2]

	var last Progress
	calls := 0
	fromBytes := map[peer.ID]int64{}
	fromBlocks := map[peer.ID]int64{}
	st, err := fetcher.ex.Fetch(testCtx(t), d.root, ids(ns[0], ns[1]), WithProgress(func(p Progress) {
		if p.Blocks != last.Blocks+1 || p.Bytes <= last.Bytes {
			t.Errorf("progress went from %+v to %+v", last, p)
		}
		last = p
		calls++
	}), WithBlockFrom(func(p peer.ID, size int) {
		fromBytes[p] += int64(size)
		fromBlocks[p]++
	}))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if !bytes.Equal(d.assemble(t, fetcher.bs), d.data) {
		t.Fatal("fetched file differs from the original")
	}
	checkOncePerBlock(t, fetcher.bs, d)
	if st.Blocks != int64(len(d.blocks)) || calls != len(d.blocks) || st.KnownBlocks != int64(len(d.blocks)) {
		t.Errorf("stats %+v, %d progress calls; want %d blocks", st.Progress, calls, len(d.blocks))
	}
	if st.PerPeer[ns[0].h.ID()] == 0 || st.PerPeer[ns[1].h.ID()] == 0 {
		t.Errorf("blocks per peer %s; want both peers used", fmtPeers(st.PerPeer))
	}
	var sum int64
	for p, n := range st.PerPeer {
		if fromBlocks[p] != n {
			t.Errorf("WithBlockFrom counted %d blocks from %s, stats say %d", fromBlocks[p], p, n)
		}
		sum += fromBytes[p]
	}
	if sum != st.Bytes {
		t.Errorf("WithBlockFrom bytes sum to %d, stats say %d", sum, st.Bytes)
	}
}

func TestServerDiesMidTransfer(t *testing.T) {
	ns := newNodes(t, 3)
	d := makeDAG(t, 48, 64<<10, 8)
	dying, honest, fetcher := ns[0], ns[1], ns[2]
	d.load(t, dying.bs)
	d.load(t, honest.bs)

	// The dying server goes down (host closed, every connection dropped)
	// once the fetcher has stored 3 blocks from it, with more of its
	// blocks requested. (Dying on the server's own count of blocks read
	// proved racy: with two streams and read-ahead it can read 6 before
	// any has arrived.)
	var fromDying atomic.Int32
	died := make(chan struct{})
	st, err := fetcher.ex.Fetch(testCtx(t), d.root, ids(dying, honest), WithBlockFrom(func(p peer.ID, _ int) {
		if p == dying.h.ID() && fromDying.Add(1) == 3 {
			go func() { // not under the fetch's lock
				defer close(died)
				_ = dying.h.Close()
			}()
		}
	}))
	if n := fromDying.Load(); n < 3 {
		t.Fatalf("dying peer delivered %d blocks and never died (Fetch: %v); the test did not test a mid-transfer death", n, err)
	}
	<-died
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if !bytes.Equal(d.assemble(t, fetcher.bs), d.data) {
		t.Fatal("fetched file differs from the original")
	}
	checkOncePerBlock(t, fetcher.bs, d)
	// The dying peer is either reported failed or still being redialled
	// when the fetch completes; either way the honest peer finished it.
	if st.PerPeer[honest.h.ID()] == 0 {
		t.Errorf("honest peer delivered nothing (%s)", fmtPeers(st.PerPeer))
	}
	if st.PerPeer[dying.h.ID()] == 0 {
		t.Errorf("dying peer delivered nothing before it died (%s); the test did not test a mid-transfer death", fmtPeers(st.PerPeer))
	}
	if got := st.PerPeer[dying.h.ID()] + st.PerPeer[honest.h.ID()]; got != int64(len(d.blocks)) {
		t.Errorf("blocks fetched %d (%s); want %d, none twice", got, fmtPeers(st.PerPeer), len(d.blocks))
	}
}

func TestCorruptPeerIsPenalisedAndBypassed(t *testing.T) {
	var hooked []string
	ns := newNodes(t, 3)
	d := makeDAG(t, 32, 64<<10, 8)
	liar, honest, fetcher := ns[0], ns[1], ns[2]
	d.load(t, liar.bs)
	d.load(t, honest.bs)
	// The liar flips a bit in every chunk it serves, past its own verified
	// read (a malicious or broken peer). The honest server holds its chunks
	// back until the liar has served one, so the liar is asked for chunks
	// whichever stream starts first.
	lied := make(chan struct{})
	var once sync.Once
	liar.bs.getHook = func(c cid.Cid, b []byte) []byte {
		if c.Prefix().Codec != cid.Raw {
			return b
		}
		bad := append([]byte(nil), b...)
		bad[len(bad)/2] ^= 1
		once.Do(func() { close(lied) })
		return bad
	}
	ctx := testCtx(t)
	honest.bs.getHook = func(c cid.Cid, b []byte) []byte {
		if c.Prefix().Codec == cid.Raw {
			select {
			case <-lied:
			case <-ctx.Done():
			}
		}
		return b
	}
	fetcher.ex.cfg.onBadPeer = func(p peer.ID, err error) {
		if !errors.Is(err, ErrBadBlock) {
			t.Errorf("bad peer hook error %v; want ErrBadBlock", err)
		}
		hooked = append(hooked, p.String())
	}
	st, err := fetcher.ex.Fetch(ctx, d.root, ids(liar, honest))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if !bytes.Equal(d.assemble(t, fetcher.bs), d.data) {
		t.Fatal("fetched file differs from the original")
	}
	checkOncePerBlock(t, fetcher.bs, d)
	if len(st.BadPeers) != 1 || st.BadPeers[0] != liar.h.ID() {
		t.Errorf("bad peers %v; want [%s]", st.BadPeers, liar.h.ID())
	}
	if got := fetcher.ex.Penalty(liar.h.ID()); got != 1 {
		t.Errorf("liar penalty %d; want 1", got)
	}
	if got := fetcher.ex.Penalty(honest.h.ID()); got != 0 {
		t.Errorf("honest penalty %d; want 0", got)
	}
	if len(hooked) != 1 || hooked[0] != liar.h.ID().String() {
		t.Errorf("bad peer hook calls %v; want the liar once", hooked)
	}
	// A penalised peer is not asked again: with only the liar, a new fetch
	// has no usable peer.
	other := makeDAG(t, 2, 1<<10, 2)
	other.load(t, liar.bs)
	if _, err := fetcher.ex.Fetch(testCtx(t), other.root, ids(liar)); !errors.Is(err, ErrNoPeers) {
		t.Errorf("fetch from a penalised peer only: %v; want ErrNoPeers", err)
	}
}

func TestResumeFetchesOnlyMissing(t *testing.T) {
	ns := newNodes(t, 2)
	d := makeDAG(t, 40, 64<<10, 8)
	server, fetcher := ns[0], ns[1]
	d.load(t, server.bs)

	ctx, cancel := context.WithCancel(testCtx(t))
	_, err := fetcher.ex.Fetch(ctx, d.root, ids(server), WithProgress(func(p Progress) {
		if p.Blocks == 15 {
			cancel()
		}
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Fetch: %v; want context.Canceled", err)
	}
	held := fetcher.bs.len()
	if held < 15 || held >= len(d.blocks) {
		t.Fatalf("after interruption the store holds %d of %d blocks", held, len(d.blocks))
	}
	st, err := fetcher.ex.Fetch(testCtx(t), d.root, ids(server))
	if err != nil {
		t.Fatalf("resumed Fetch: %v", err)
	}
	if st.Blocks != int64(len(d.blocks)-held) || st.SkippedBlocks != int64(held) {
		t.Errorf("resumed fetch got %d blocks, skipped %d; want %d and %d", st.Blocks, st.SkippedBlocks, len(d.blocks)-held, held)
	}
	checkOncePerBlock(t, fetcher.bs, d)
	if !bytes.Equal(d.assemble(t, fetcher.bs), d.data) {
		t.Fatal("fetched file differs from the original")
	}
	// A third fetch finds everything held and transfers nothing.
	st, err = fetcher.ex.Fetch(testCtx(t), d.root, nil)
	if err != nil || st.Blocks != 0 || st.SkippedBlocks != int64(len(d.blocks)) {
		t.Errorf("fetch of a complete DAG: %+v, %v; want 0 fetched, all skipped", st.Progress, err)
	}
}

func TestMissingEverywhere(t *testing.T) {
	ns := newNodes(t, 3)
	d := makeDAG(t, 8, 1<<10, 4)
	d.load(t, ns[0].bs)
	d.load(t, ns[1].bs)
	// Both servers lack the same chunk.
	for _, n := range ns[:2] {
		n.bs.mu.Lock()
		delete(n.bs.blocks, d.chunks[5])
		n.bs.mu.Unlock()
	}
	_, err := ns[2].ex.Fetch(testCtx(t), d.root, ids(ns[0], ns[1]))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Fetch: %v; want ErrNotFound", err)
	}
}

func TestPolicyDenies(t *testing.T) {
	ns := newNodes(t, 2)
	d := makeDAG(t, 4, 1<<10, 4)
	server, fetcher := ns[0], ns[1]
	d.load(t, server.bs)
	server.ex.cfg.allow = func(p peer.ID, root cid.Cid) bool { return p != fetcher.h.ID() }
	st, err := fetcher.ex.Fetch(testCtx(t), d.root, ids(server))
	if !errors.Is(err, ErrNoPeers) || !errors.Is(st.Failed[server.h.ID()], ErrDenied) {
		t.Fatalf("Fetch: %v, failed %v; want ErrNoPeers after a denial", err, st.Failed)
	}
	if fetcher.bs.len() != 0 {
		t.Errorf("denied fetch stored %d blocks", fetcher.bs.len())
	}
	if fetcher.ex.Penalty(server.h.ID()) != 0 {
		t.Error("a denial penalised the server")
	}
}

func TestFetchRejectsBadArguments(t *testing.T) {
	ns := newNodes(t, 2)
	if _, err := ns[0].ex.Fetch(testCtx(t), cid.Undef, ids(ns[1])); err == nil {
		t.Error("Fetch of an undefined root succeeded")
	}
	d := makeDAG(t, 2, 1<<10, 2)
	if _, err := ns[0].ex.Fetch(testCtx(t), d.root, nil); !errors.Is(err, ErrNoPeers) {
		t.Errorf("Fetch with no peers: %v; want ErrNoPeers", err)
	}
	if _, err := ns[0].ex.Fetch(testCtx(t), d.root, ids(ns[0])); !errors.Is(err, ErrNoPeers) {
		t.Errorf("Fetch from only itself: %v; want ErrNoPeers", err)
	}
	if ns[0].bs.len() != 0 {
		t.Error("failed fetches stored blocks")
	}
}

// TestStreamResetIsReopened resets the only stream mid-transfer (as a
// server closing an idle stream would): the fetcher reopens it and
// completes from the same peer, fetching nothing twice.
func TestStreamResetIsReopened(t *testing.T) {
	ns := newNodes(t, 2, WithStreamsPerPeer(1))
	server, fetcher := ns[0], ns[1]
	d := makeDAG(t, 24, 16<<10, 8)
	d.load(t, server.bs)
	var resets atomic.Int32
	server.bs.getHook = func(c cid.Cid, b []byte) []byte {
		// Once the fetcher has stored a few blocks (so the stream has made
		// progress), reset every exchange stream between the two, once.
		if fetcher.bs.len() >= 3 && resets.CompareAndSwap(0, 1) {
			for _, conn := range server.h.Network().ConnsToPeer(fetcher.h.ID()) {
				for _, s := range conn.GetStreams() {
					if s.Protocol() == protocol.StreamProtocol(testNet, ProtocolName) {
						_ = s.Reset()
					}
				}
			}
		}
		return b
	}
	st, err := fetcher.ex.Fetch(testCtx(t), d.root, ids(server))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if resets.Load() != 1 {
		t.Fatal("the stream was never reset; the test did not test a reopen")
	}
	if len(st.Failed) != 0 || len(st.BadPeers) != 0 {
		t.Errorf("failed %v, bad %v; want the peer kept", st.Failed, st.BadPeers)
	}
	checkOncePerBlock(t, fetcher.bs, d)
	if !bytes.Equal(d.assemble(t, fetcher.bs), d.data) {
		t.Fatal("fetched file differs from the original")
	}
}
