package consensus

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/gpunode/gpunode/protocol"
)

// KindTxBatch is the txs topic's batch message: many signed KindTx
// envelopes in one gossip message, so that one gossipsub signature and one
// envelope signature cover them all instead of one each (docs/PROTOCOL.md
// §9). Each tx inside keeps its own author's signature; the batch's author
// is the node that gossips it.
const KindTxBatch protocol.Kind = "txbatch"

// Batch limits. A batch is at most MaxBatchPayload bytes of payload and
// MaxBatchTxs txs; the node's batcher closes batches well below both.
const (
	MaxBatchPayload = 1 << 20
	MaxBatchTxs     = 4096

	batchTargetTxs   = 1024
	batchTargetBytes = 512 << 10
)

func init() { protocol.RegisterKind(KindTxBatch, MaxBatchPayload) }

// TxBatch is the payload of a KindTxBatch envelope.
type TxBatch struct {
	Txs [][]byte `cbor:"1,keyasint"` // 1..MaxBatchTxs encoded KindTx envelopes
}

// DecodeTxBatch strictly decodes a batch payload: 1 to MaxBatchTxs
// non-empty txs. It does not look inside the txs.
func DecodeTxBatch(payload []byte) (*TxBatch, error) {
	if len(payload) > MaxBatchPayload {
		return nil, fmt.Errorf("%w: batch of %d bytes", protocol.ErrTooLarge, len(payload))
	}
	var b TxBatch
	if err := protocol.Unmarshal(payload, &b); err != nil {
		return nil, err
	}
	if len(b.Txs) == 0 || len(b.Txs) > MaxBatchTxs {
		return nil, fmt.Errorf("%w: batch of %d txs, want 1 to %d", protocol.ErrMalformed, len(b.Txs), MaxBatchTxs)
	}
	for i, tx := range b.Txs {
		if len(tx) == 0 {
			return nil, fmt.Errorf("%w: batch tx %d is empty", protocol.ErrMalformed, i)
		}
	}
	return &b, nil
}

// splitBatches cuts txs, in order, into batches within the target size.
func splitBatches(txs [][]byte) [][][]byte {
	var out [][][]byte
	start, size := 0, 0
	for i, tx := range txs {
		if i > start && (i-start >= batchTargetTxs || size+len(tx) > batchTargetBytes) {
			out = append(out, txs[start:i])
			start, size = i, 0
		}
		size += len(tx)
	}
	if start < len(txs) {
		out = append(out, txs[start:])
	}
	return out
}

// verifyAll verifies every tx of a batch with v, spread over the CPUs (a
// batch arrives as one message, which gossipsub validates on one
// goroutine). Gossip validation (wait set) first waits for one of the
// verifier's slots, so that however many batches arrive at once at most
// GOMAXPROCS goroutines verify them and the consensus loop, which has no
// priority over them in the Go scheduler, still gets its share of the
// CPUs; the loop itself (wait unset) never waits. Helpers run in free
// slots only. It returns the first failure.
func verifyAll(v *txVerifier, chainID string, txs [][]byte, wait bool) error {
	if wait {
		v.slots <- struct{}{}
		defer func() { <-v.slots }()
	}
	var next atomic.Int64
	var failed atomic.Pointer[error]
	work := func() {
		for failed.Load() == nil {
			i := int(next.Add(1)) - 1
			if i >= len(txs) {
				return
			}
			if _, err := v.VerifyTx(chainID, txs[i]); err != nil {
				err = fmt.Errorf("batch tx %d: %w", i, err)
				failed.CompareAndSwap(nil, &err)
			}
			if wait {
				// Gossip verification is background work: after each
				// signature (tens of µs) let a goroutine that just became
				// runnable (the loop with a proposal or vote, gossipsub
				// forwarding one) run first, instead of after the
				// scheduler's 10ms time slice. On a saturated machine each
				// hop of a proposal's path would otherwise wait that long.
				runtime.Gosched()
			}
		}
	}
	var wg sync.WaitGroup
helpers:
	for range (len(txs)+31)/32 - 1 {
		select {
		case v.slots <- struct{}{}:
			wg.Go(func() {
				defer func() { <-v.slots }()
				work()
			})
		default:
			break helpers
		}
	}
	work()
	wg.Wait()
	if p := failed.Load(); p != nil {
		return *p
	}
	return nil
}
