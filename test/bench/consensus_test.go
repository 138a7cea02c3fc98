package bench

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/storage"
)

const benchChain = "benchchain"

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: benchLogLevel()}))
}

// benchNet is four validators on loopback with in-memory badger stores.
type benchNet struct {
	keys *ledger.Keyring
	svcs []*consensus.Service

	mu        sync.Mutex // guards the fields below
	commitAt  []time.Time
	committed int
	submitted map[[32]byte]time.Time
	latencies []time.Duration
	done      chan struct{} // closed when committed reaches want
	want      int
}

func startBenchNet(b *testing.B, nVals, nSenders int) *benchNet {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	keys := ledger.NewKeyring(rand.New(rand.NewPCG(42, 42)), nVals+nSenders)
	g := keys.TestGenesis(benchChain, nVals, 1_000_000_000_000, 1_000_000)
	g.Params.MaxBlockTxs = 20_000
	bn := &benchNet{keys: keys, submitted: map[[32]byte]time.Time{}}
	var nodes []*node.Node
	for i := range nVals {
		key := keys.Key(keys.IDs[i])
		n, err := node.New(ctx, node.Config{Network: "bench", ChainID: benchChain,
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, DisableQUIC: true,
			BootstrapTimeout: node.Duration(60 * time.Second), Logger: quietLogger()}, key)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = n.Close() })
		for _, o := range nodes {
			if err := n.Connect(ctx, o.AddrInfo()); err != nil {
				b.Fatal(err)
			}
		}
		nodes = append(nodes, n)
		// On disk, as a daemon runs: the WAL's fsyncs are part of the cost.
		db, err := storage.Open(b.TempDir(), storage.WithLowMemory(), storage.WithLogger(quietLogger()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = db.Close() })
		svc, err := consensus.New(consensus.Config{Genesis: g, Key: key, KV: consensus.NewKV(db),
			Network: node.ChainNetwork(n), Logger: quietLogger(), MempoolSize: 200_000,
			// Within the low-memory store's batch limit.
			MaxBlockBytes: 512 << 10})
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			svc.OnCommit(bn.onCommit)
		}
		if err := svc.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = svc.Close() })
		bn.svcs = append(bn.svcs, svc)
	}
	return bn
}

func (bn *benchNet) onCommit(c *consensus.Committed) {
	now := time.Now()
	bn.mu.Lock()
	defer bn.mu.Unlock()
	bn.commitAt = append(bn.commitAt, now)
	if os.Getenv("BENCH_BLOCKS") != "" {
		println("block", c.Height, "txs", len(c.Block.Txs), "round", c.Certificate.Round, now.Format("05.000"))
	}
	for _, tx := range c.Block.Txs {
		h := ledger.TxHash(tx)
		if t, ok := bn.submitted[h]; ok {
			bn.latencies = append(bn.latencies, now.Sub(t))
			delete(bn.submitted, h)
		}
	}
	bn.committed += len(c.Block.Txs)
	if bn.done != nil && bn.committed >= bn.want {
		close(bn.done)
		bn.done = nil
	}
}

// expect arms done for n more committed txs.
func (bn *benchNet) expect(n int) chan struct{} {
	bn.mu.Lock()
	defer bn.mu.Unlock()
	ch := make(chan struct{})
	bn.want, bn.done = bn.committed+n, ch
	return ch
}

func (bn *benchNet) waitHeight(b *testing.B, h uint64) {
	deadline := time.Now().Add(2 * time.Minute)
	for bn.svcs[0].Height() < h {
		for _, s := range bn.svcs {
			if err := s.Err(); err != nil {
				b.Fatal(err)
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("chain stuck at %d", bn.svcs[0].Height())
		}
		<-time.After(10 * time.Millisecond)
	}
}

// sign pre-signs perSender transfers from each sender, nonces from start.
func (bn *benchNet) sign(b *testing.B, nVals, nSenders, perSender int, start uint64) [][]byte {
	var out [][]byte
	for n := range perSender {
		for s := range nSenders {
			from := bn.keys.IDs[nVals+s]
			tx, err := ledger.NewTx(ledger.TxTransfer, start+uint64(n), 1, ledger.Transfer{To: bn.keys.IDs[(s+1)%nVals], Amount: 1})
			if err != nil {
				b.Fatal(err)
			}
			raw, err := ledger.SignTx(bn.keys.Key(from), benchChain, time.Now(), tx)
			if err != nil {
				b.Fatal(err)
			}
			out = append(out, raw)
		}
	}
	return out
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2]
}

// BenchmarkConsensus measures four validators on loopback sharing this
// machine: block-ms, the median interval between idle blocks; tx/s, the
// rate at which a burst of signed transfers (submitted round-robin to the
// validators, gossiped, verified by each) is committed; tx/cpu-s, the
// burst's txs per CPU-second of the whole process (all four nodes);
// commit-ms, the median time from Submit to commit at a steady 1,000 tx/s.
func BenchmarkConsensus(b *testing.B) {
	const nVals, nSenders = 4, 200
	bn := startBenchNet(b, nVals, nSenders)
	bn.waitHeight(b, 3)
	ctx := context.Background()
	var nonce uint64
	for range b.N {
		// Idle blocks.
		bn.mu.Lock()
		from := len(bn.commitAt)
		bn.mu.Unlock()
		h := bn.svcs[0].Height()
		bn.waitHeight(b, h+21)
		bn.mu.Lock()
		at := slices.Clone(bn.commitAt[from:])
		bn.mu.Unlock()
		var gaps []time.Duration
		for i := 1; i < len(at); i++ {
			gaps = append(gaps, at[i].Sub(at[i-1]))
		}
		b.ReportMetric(float64(median(gaps).Microseconds())/1000, "block-ms")

		// Burst throughput.
		const perSender = 50 // 10,000 txs
		txs := bn.sign(b, nVals, nSenders, perSender, nonce)
		nonce += perSender
		done := bn.expect(len(txs))
		start, cpu0 := time.Now(), cpuTime()
		var wg sync.WaitGroup
		for v := range nVals {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := v; i < len(txs); i += nVals {
					if _, err := bn.svcs[v].Submit(ctx, txs[i]); err != nil {
						b.Errorf("submit: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		select {
		case <-done:
		case <-time.After(3 * time.Minute):
			b.Fatalf("burst not committed: %d of %d", bn.committed, len(txs))
		}
		b.ReportMetric(float64(len(txs))/time.Since(start).Seconds(), "tx/s")
		b.ReportMetric(float64(len(txs))/(cpuTime()-cpu0).Seconds(), "tx/cpu-s")

		// Latency at 1,000 tx/s for 3 s.
		const rate, secs = 1000, 3
		txs = bn.sign(b, nVals, nSenders, rate*secs/nSenders, nonce)
		nonce += rate * secs / nSenders
		bn.mu.Lock()
		bn.latencies = nil
		bn.mu.Unlock()
		done = bn.expect(len(txs))
		tick := time.NewTicker(time.Second / 100)
		for i := 0; i < len(txs); i += rate / 100 {
			<-tick.C
			for j := i; j < i+rate/100 && j < len(txs); j++ {
				hh := ledger.TxHash(txs[j])
				bn.mu.Lock()
				bn.submitted[hh] = time.Now()
				bn.mu.Unlock()
				if _, err := bn.svcs[j%nVals].Submit(ctx, txs[j]); err != nil {
					b.Fatalf("submit: %v", err)
				}
			}
		}
		tick.Stop()
		select {
		case <-done:
		case <-time.After(3 * time.Minute):
			b.Fatal("steady load not committed")
		}
		bn.mu.Lock()
		lat := slices.Clone(bn.latencies)
		bn.mu.Unlock()
		b.ReportMetric(float64(median(lat).Microseconds())/1000, "commit-ms")
	}
}

func benchLogLevel() slog.Level {
	if os.Getenv("BENCH_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelError
}
