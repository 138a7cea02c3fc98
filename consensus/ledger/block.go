package ledger

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/gpunode/gpunode/protocol"
)

// Header is a block header. Consensus agrees on the header hash (Hash),
// which commits the body through TxRoot and EvidenceRoot and the result
// through StateHash.
type Header struct {
	ChainID string `cbor:"1,keyasint" json:"chain_id"`
	Height  uint64 `cbor:"2,keyasint" json:"height"`
	// Time is the proposer's clock in unix milliseconds. It is recorded and
	// shown, never used for safety or validity (CometBFT ADR-112).
	Time     int64    `cbor:"3,keyasint" json:"time"`
	Proposer string   `cbor:"4,keyasint" json:"proposer"`  // peer ID string; must be in the height's validator set
	PrevHash [32]byte `cbor:"5,keyasint" json:"prev_hash"` // Hash of the previous header; zero at height 1
	TxRoot   [32]byte `cbor:"6,keyasint" json:"tx_root"`
	// EvidenceRoot commits the block's evidence list.
	EvidenceRoot [32]byte `cbor:"7,keyasint" json:"evidence_root"`
	// StateHash is the hash of the state that results from applying this
	// block (not the previous one, as in Tendermint's AppHash): the
	// proposer executes the block before proposing (Propose), and a commit
	// certificate then vouches for the resulting state directly, so a
	// follower or block-syncing peer detects divergence at the very height
	// where it happens.
	StateHash [32]byte `cbor:"8,keyasint" json:"state_hash"`
}

// Block is a header, the encoded tx envelopes in execution order, and
// evidence of validator misbehaviour.
type Block struct {
	Header   Header     `cbor:"1,keyasint" json:"header"`
	Txs      [][]byte   `cbor:"2,keyasint" json:"txs"`
	Evidence []Evidence `cbor:"3,keyasint" json:"evidence"`
}

const (
	headerDomain   = "gpunode/ledger/header/1\x00"
	txRootDomain   = "gpunode/ledger/txs/1\x00"
	evRootDomain   = "gpunode/ledger/evidence/1\x00"
	evidenceDomain = "gpunode/ledger/evidence-item/1\x00"
)

// Hash is the block hash: sha256 over a domain tag and the header's
// deterministic CBOR.
func (h *Header) Hash() [32]byte {
	s := sha256.New()
	s.Write([]byte(headerDomain))
	s.Write(protocol.MustMarshal(h))
	var out [32]byte
	s.Sum(out[:0])
	return out
}

// Hash is the hash of b's header.
func (b *Block) Hash() [32]byte { return b.Header.Hash() }

// TxRoot is sha256 over a domain tag, the tx count and each tx's TxHash, in
// order. A flat list hash, not a Merkle tree: nothing proves single txs yet.
func TxRoot(txs [][]byte) [32]byte {
	s := sha256.New()
	s.Write([]byte(txRootDomain))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(txs)))
	s.Write(n[:])
	for _, tx := range txs {
		h := TxHash(tx)
		s.Write(h[:])
	}
	var out [32]byte
	s.Sum(out[:0])
	return out
}

// EvidenceRoot is TxRoot's counterpart for evidence.
func EvidenceRoot(evs []Evidence) [32]byte {
	s := sha256.New()
	s.Write([]byte(evRootDomain))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(evs)))
	s.Write(n[:])
	for i := range evs {
		h := evs[i].Hash()
		s.Write(h[:])
	}
	var out [32]byte
	s.Sum(out[:0])
	return out
}

// Encode is the block's deterministic CBOR.
func (b *Block) Encode() ([]byte, error) { return protocol.Marshal(b) }

// DecodeBlock strictly decodes a block.
func DecodeBlock(data []byte) (*Block, error) {
	var b Block
	if err := protocol.Unmarshal(data, &b); err != nil {
		return nil, err
	}
	return &b, nil
}
