package consensus

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/protocol"
)

// vectorKey is the Ed25519 key of the 32-byte seed of b repeated.
func vectorKey(t *testing.T, b byte) crypto.PrivKey {
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// docVector is the hex block that follows marker in docs/PROTOCOL.md.
func docVector(t *testing.T, marker string) string {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("docs/PROTOCOL.md has no %q", marker)
	}
	s = s[i:]
	open := strings.Index(s, "```")
	if open < 0 {
		t.Fatal("no code block after the marker")
	}
	s = s[open+3:]
	s = s[strings.Index(s, "\n")+1:]
	s = s[:strings.Index(s, "```")]
	return strings.Join(strings.Fields(s), "")
}

func wrapHex(h string) string {
	var b strings.Builder
	for len(h) > 64 {
		b.WriteString(h[:64] + "\n")
		h = h[64:]
	}
	return b.String() + h
}

// TestTxBatchVector pins the wire form of a KindTxBatch envelope to the
// test vector of docs/PROTOCOL.md §9: a batch of one transfer, the tx
// signed by the key of seed 01..01, the batch by the key of seed 02..02,
// chain "devnet".
func TestTxBatchVector(t *testing.T) {
	sender, batcher := vectorKey(t, 1), vectorKey(t, 2)
	batcherID, err := peer.IDFromPrivateKey(batcher)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := ledger.NewTx(ledger.TxTransfer, 0, 1, ledger.Transfer{To: batcherID.String(), Amount: 5})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ledger.SignTx(sender, "devnet", time.UnixMilli(1_700_000_000_000), tx)
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := protocol.Seal(batcher, "devnet", KindTxBatch, time.UnixMilli(1_700_000_000_001), &TxBatch{Txs: [][]byte{raw}})
	if err != nil {
		t.Fatal(err)
	}
	got := hex.EncodeToString(data)
	if want := docVector(t, "<!-- txbatch-vector -->"); got != want {
		t.Fatalf("txbatch envelope changed (a wire format change): got\n%s", wrapHex(got))
	}
	// The vector checks out on its own: the batch opens, decodes, and its
	// tx verifies.
	env, err := protocol.Open(data, "devnet")
	if err != nil || env.Kind != KindTxBatch {
		t.Fatalf("Open: %v", err)
	}
	b, err := DecodeTxBatch(env.Payload)
	if err != nil || len(b.Txs) != 1 {
		t.Fatalf("DecodeTxBatch: %v", err)
	}
	vt, err := ledger.SigVerifier{}.VerifyTx("devnet", b.Txs[0])
	if err != nil || vt.Tx.Nonce != 0 || vt.Tx.Fee != 1 {
		t.Fatalf("batch tx: %+v, %v", vt, err)
	}
}

func TestDecodeTxBatch(t *testing.T) {
	tooMany := make([][]byte, MaxBatchTxs+1)
	for i := range tooMany {
		tooMany[i] = []byte{1}
	}
	for _, c := range []struct {
		name    string
		payload []byte
		want    error
	}{
		{"two txs", protocol.MustMarshal(&TxBatch{Txs: [][]byte{{1}, {2, 3}}}), nil},
		{"no txs", protocol.MustMarshal(&TxBatch{}), protocol.ErrMalformed},
		{"an empty tx", protocol.MustMarshal(&TxBatch{Txs: [][]byte{{1}, {}}}), protocol.ErrMalformed},
		{"too many txs", protocol.MustMarshal(&TxBatch{Txs: tooMany}), protocol.ErrMalformed},
		{"unknown field", protocol.MustMarshal(map[int][]byte{1: {0x80}, 2: {}}), protocol.ErrMalformed},
		{"non-minimal length", []byte{0xa1, 0x01, 0x98, 0x01, 0x41, 0x01}, protocol.ErrNonCanonical},
		{"too large", make([]byte, MaxBatchPayload+1), protocol.ErrTooLarge},
	} {
		_, err := DecodeTxBatch(c.payload)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: DecodeTxBatch = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestSplitBatches(t *testing.T) {
	big := make([]byte, batchTargetBytes/2+1)
	small := []byte{1}
	var many [][]byte
	for range batchTargetTxs + 1 {
		many = append(many, small)
	}
	for _, c := range []struct {
		name string
		txs  [][]byte
		want []int // batch lengths
	}{
		{"none", nil, nil},
		{"one", [][]byte{small}, []int{1}},
		{"by count", many, []int{batchTargetTxs, 1}},
		{"by bytes", [][]byte{big, big, small, big}, []int{1, 2, 1}},
		{"oversize tx alone", [][]byte{make([]byte, batchTargetBytes+1), small}, []int{1, 1}},
	} {
		var got []int
		n := 0
		for _, b := range splitBatches(c.txs) {
			got = append(got, len(b))
			n += len(b)
		}
		if !equalInts(got, c.want) || n != len(c.txs) {
			t.Errorf("%s: batches %v, want %v", c.name, got, c.want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// batchFixture is a Service without network (validator 0 of the driver's
// four) and transfers from validator 1's account.
func batchFixture(t *testing.T) (*Service, *driver) {
	d := newDriver(t)
	s, err := New(Config{Genesis: d.g, Key: d.keys.Key(d.self), KV: newMemKV(), Timeouts: fastTimeouts,
		Logger: testLogger(), TxGossipDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s, d
}

func (d *driver) transfers(from string, nonces ...uint64) [][]byte {
	var out [][]byte
	for _, n := range nonces {
		tx, err := ledger.NewTx(ledger.TxTransfer, n, 1, ledger.Transfer{To: d.keys.IDs[3], Amount: 1})
		if err != nil {
			d.t.Fatal(err)
		}
		raw, err := ledger.SignTx(d.keys.Key(from), testChain, time.UnixMilli(1), tx)
		if err != nil {
			d.t.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}

func TestValidateTxBatch(t *testing.T) {
	s, d := batchFixture(t)
	v1 := d.keys.IDs[1]
	peer1, _ := peer.Decode(v1)
	self, _ := peer.Decode(d.self)
	seal := func(body any) *protocol.Envelope {
		_, env, err := protocol.Seal(d.keys.Key(v1), testChain, KindTxBatch, time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	ctx := context.Background()
	good := d.transfers(v1, 0, 1, 2)
	badSig := d.transfers(v1, 3, 4)
	badSig[1][len(badSig[1])-1] ^= 1
	otherChain, err := ledger.SignTx(d.keys.Key(v1), "other", time.UnixMilli(1), mustTx(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	farAhead := d.transfers(v1, 5000)
	for _, c := range []struct {
		name string
		from peer.ID
		env  *protocol.Envelope
		want Verdict
	}{
		{"bad signature in a batch", peer1, seal(&TxBatch{Txs: badSig}), Reject},
		{"another chain's tx in a batch", peer1, seal(&TxBatch{Txs: [][]byte{good[0], otherChain}}), Reject},
		{"garbage tx in a batch", peer1, seal(&TxBatch{Txs: [][]byte{good[0], []byte("junk")}}), Reject},
		{"empty batch", peer1, seal(&TxBatch{}), Reject},
		{"valid batch", peer1, seal(&TxBatch{Txs: good}), Accept},
		{"valid batch again", peer1, seal(&TxBatch{Txs: good}), Accept},
		{"valid tx the state refuses", peer1, seal(&TxBatch{Txs: farAhead}), Accept},
		{"own publish", self, seal(&TxBatch{Txs: badSig}), Accept},
	} {
		if got := s.validateTx(ctx, c.from, c.env); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	// Only the valid batch's txs are in the mempool, and their signatures
	// are not checked again there or in a block.
	if n := s.pool.Len(); n != 3 {
		t.Fatalf("mempool holds %d txs, want 3", n)
	}
	for _, raw := range good {
		if !s.pool.Has(ledger.TxHash(raw)) {
			t.Fatal("a valid batch tx is not in the mempool")
		}
	}
	if n := s.eng.verifier.cached(); n != 5 { // good, badSig[0] and farAhead
		t.Fatalf("verifier remembers %d txs, want 5", n)
	}
}

func mustTx(t *testing.T, nonce uint64) ledger.Tx {
	tx, err := ledger.NewTx(ledger.TxTransfer, nonce, 1, ledger.Transfer{To: "x", Amount: 1})
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// fakeTopic records publishes on a channel.
type fakeTopic struct{ out chan published }

type published struct {
	kind protocol.Kind
	txs  [][]byte
	at   time.Time
}

func (f *fakeTopic) Publish(_ context.Context, kind protocol.Kind, body any) error {
	f.out <- published{kind: kind, txs: body.(*TxBatch).Txs, at: time.Now()}
	return nil
}

func (f *fakeTopic) PublishRaw(_ context.Context, data []byte) error {
	f.out <- published{kind: protocol.KindTx, txs: [][]byte{data}, at: time.Now()}
	return nil
}

func (f *fakeTopic) Next(ctx context.Context) (*Received, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (f *fakeTopic) Close() error { return nil }

// TestSubmitBatchesGossip: submitted txs go out together TxGossipDelay
// after the first; a full batch goes at once; a lone tx goes as itself.
func TestSubmitBatchesGossip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, d := batchFixture(t)
		ft := &fakeTopic{out: make(chan published)}
		s.txs = ft
		s.wg.Add(1)
		go s.gossipTxs()
		defer func() { s.stop(); s.wg.Wait() }()
		ctx := context.Background()
		submit := func(txs [][]byte) time.Time {
			for _, raw := range txs {
				if _, err := s.Submit(ctx, raw); err != nil {
					t.Fatal(err)
				}
			}
			return time.Now()
		}
		v1 := d.keys.IDs[1]

		txs := d.transfers(v1, 0, 1, 2)
		start := submit(txs)
		p := <-ft.out
		if p.kind != KindTxBatch || len(p.txs) != 3 || !bytes.Equal(p.txs[2], txs[2]) {
			t.Fatalf("published %s of %d txs, want one batch of the 3", p.kind, len(p.txs))
		}
		if waited := p.at.Sub(start); waited != time.Second {
			t.Fatalf("batch went %v after the first tx, want TxGossipDelay (1s)", waited)
		}

		start = submit(d.transfers(v1, 3))
		if p := <-ft.out; p.kind != protocol.KindTx || p.at.Sub(start) != time.Second {
			t.Fatalf("a lone tx went as %s after %v", p.kind, p.at.Sub(start))
		}

		var nonces []uint64
		for n := range uint64(batchTargetTxs) {
			nonces = append(nonces, n)
		}
		start = submit(d.transfers(d.keys.IDs[2], nonces...))
		if p := <-ft.out; len(p.txs) != batchTargetTxs || !p.at.Equal(start) {
			t.Fatalf("a full batch of %d went after %v, want %d at once", len(p.txs), p.at.Sub(start), batchTargetTxs)
		}
	})
}
