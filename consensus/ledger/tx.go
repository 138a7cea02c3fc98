package ledger

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/protocol"
)

// TxType discriminates tx bodies. The market adds its own types with
// WithTxHandler.
type TxType string

// The built-in tx types.
const (
	TxTransfer TxType = "transfer"
	TxStake    TxType = "stake"
	TxUnstake  TxType = "unstake"
	TxUnjail   TxType = "unjail"
)

// Tx is the payload of a KindTx envelope: a typed body with the sender's
// account nonce and the fee. The sender is the envelope's author.
type Tx struct {
	Type  TxType `cbor:"1,keyasint"`
	Nonce uint64 `cbor:"2,keyasint"`
	Fee   uint64 `cbor:"3,keyasint"`
	Body  []byte `cbor:"4,keyasint"` // deterministic CBOR of the type's body struct
}

// Transfer moves Amount from the sender's balance to To (a peer ID string).
type Transfer struct {
	To     string `cbor:"1,keyasint"`
	Amount uint64 `cbor:"2,keyasint"`
}

// Stake bonds Amount of the sender's balance in Role. A validator stake
// changes the validator set two heights later.
type Stake struct {
	Role   Role   `cbor:"1,keyasint"`
	Amount uint64 `cbor:"2,keyasint"`
}

// Unstake starts unbonding Amount of the sender's stake in Role; it returns
// to the balance UnbondingPeriod blocks later.
type Unstake struct {
	Role   Role   `cbor:"1,keyasint"`
	Amount uint64 `cbor:"2,keyasint"`
}

// Unjail lets a jailed validator back into the set once its jail period is
// over (if its stake is still at least the minimum).
type Unjail struct{}

// NewTx encodes body as a tx of type typ.
func NewTx(typ TxType, nonce, fee uint64, body any) (Tx, error) {
	b, err := protocol.Marshal(body)
	if err != nil {
		return Tx{}, err
	}
	return Tx{Type: typ, Nonce: nonce, Fee: fee, Body: b}, nil
}

// SignTx seals tx as a KindTx envelope of chainID signed by key. ts is the
// envelope timestamp; the ledger ignores it.
func SignTx(key crypto.PrivKey, chainID string, ts time.Time, tx Tx) ([]byte, error) {
	data, _, err := protocol.Seal(key, chainID, protocol.KindTx, ts, tx)
	return data, err
}

// DecodeTx strictly decodes a tx payload. It is the decoder the fuzz test
// exercises.
func DecodeTx(payload []byte) (Tx, error) {
	var tx Tx
	if err := protocol.Unmarshal(payload, &tx); err != nil {
		return Tx{}, fmt.Errorf("%w: %w", ErrBadTx, err)
	}
	if tx.Type == "" {
		return Tx{}, fmt.Errorf("%w: empty type", ErrBadTx)
	}
	return tx, nil
}

// TxHash identifies an encoded tx envelope: the sha256 of its bytes (the
// digest inside its protocol CID).
func TxHash(raw []byte) [32]byte { return sha256.Sum256(raw) }

// VerifiedTx is an authenticated, decoded tx.
type VerifiedTx struct {
	Hash   [32]byte
	Sender string // peer ID string of the envelope author
	Tx     Tx
}

// Verifier authenticates an encoded tx envelope for a chain and decodes it.
// Apply calls it for every tx; the mempool should call the same instance
// when a tx arrives, so a CachingVerifier answers Apply from memory.
// Implementations must be safe for concurrent use and deterministic: the
// answer for given bytes never changes.
type Verifier interface {
	VerifyTx(chainID string, raw []byte) (*VerifiedTx, error)
}

// SigVerifier checks every tx from scratch: canonical decoding, KindTx,
// chain ID, Ed25519 signature, tx payload.
type SigVerifier struct{}

// VerifyTx implements Verifier.
func (SigVerifier) VerifyTx(chainID string, raw []byte) (*VerifiedTx, error) {
	env, err := protocol.Open(raw, chainID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadTx, err)
	}
	if env.Kind != protocol.KindTx {
		return nil, fmt.Errorf("%w: envelope kind %q", ErrBadTx, env.Kind)
	}
	tx, err := DecodeTx(env.Payload)
	if err != nil {
		return nil, err
	}
	sender, err := senderNames.name(env)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadTx, err)
	}
	return &VerifiedTx{Hash: TxHash(raw), Sender: sender, Tx: tx}, nil
}

// senderNames remembers the account names (the base58 peer ID strings) of
// recent tx authors: encoding one costs a few µs per tx, and a sender
// sends many.
var senderNames = nameCache{size: nameCacheSize}

const nameCacheSize = 4096 // per generation

// nameCache maps binary peer IDs to their strings in two generations (as
// protocol's expanded-key cache): a hit in the previous generation moves
// forward; a full current generation becomes the previous one. Safe for
// concurrent use.
type nameCache struct {
	size int // per generation

	mu       sync.Mutex // guards cur and old
	cur, old map[string]string
}

// name is env.AuthorID().String().
func (c *nameCache) name(env *protocol.Envelope) (string, error) {
	c.mu.Lock()
	s, ok := c.cur[string(env.Author)]
	if !ok {
		if s, ok = c.old[string(env.Author)]; ok {
			c.put(string(env.Author), s)
		}
	}
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	id, err := env.AuthorID()
	if err != nil {
		return "", err
	}
	s = id.String()
	c.mu.Lock()
	c.put(string(env.Author), s)
	c.mu.Unlock()
	return s, nil
}

// put adds k to the current generation; mu is held.
func (c *nameCache) put(k, s string) {
	if c.cur == nil || len(c.cur) >= c.size {
		c.old, c.cur = c.cur, make(map[string]string, c.size)
	}
	c.cur[k] = s
}

// CachingVerifier remembers the txs another Verifier accepted, keyed by
// chain and tx hash, so a tx verified by the mempool is not verified again
// when its block is applied. Rejections are not cached. It holds at most
// Size entries and forgets the oldest first. Safe for concurrent use.
type CachingVerifier struct {
	inner Verifier
	size  int

	mu    sync.Mutex // guards cache, order and next
	cache map[cacheKey]*VerifiedTx
	order []cacheKey // ring of insertion order, len <= size
	next  int
}

type cacheKey struct {
	chain string
	hash  [32]byte
}

// NewCachingVerifier wraps inner (SigVerifier if nil) with a cache of size
// entries (at least 1).
func NewCachingVerifier(inner Verifier, size int) *CachingVerifier {
	if inner == nil {
		inner = SigVerifier{}
	}
	size = max(size, 1)
	return &CachingVerifier{inner: inner, size: size, cache: make(map[cacheKey]*VerifiedTx, size)}
}

// VerifyTx implements Verifier.
func (c *CachingVerifier) VerifyTx(chainID string, raw []byte) (*VerifiedTx, error) {
	k := cacheKey{chainID, TxHash(raw)}
	c.mu.Lock()
	v, ok := c.cache[k]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := c.inner.VerifyTx(chainID, raw)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cache[k]; !ok {
		if len(c.order) < c.size {
			c.order = append(c.order, k)
		} else {
			delete(c.cache, c.order[c.next])
			c.order[c.next] = k
			c.next = (c.next + 1) % c.size
		}
		c.cache[k] = v
	}
	return v, nil
}

// Len is the number of cached txs.
func (c *CachingVerifier) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cache)
}

// validAccountID reports whether id is the canonical string of a peer ID.
func validAccountID(id string) bool {
	p, err := peer.Decode(id)
	return err == nil && p.String() == id
}
