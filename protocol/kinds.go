package protocol

import (
	"fmt"
	"sort"
	"sync"
)

// Kind names a message type. It is part of every signature's domain tag, so
// a signature over one kind can never be replayed as another.
type Kind string

// Kinds known to every node, with their hard payload limits. Packages that
// own further message types add them with RegisterKind from init.
const (
	KindOffer       Kind = "offer"
	KindJob         Kind = "job"
	KindBid         Kind = "bid"
	KindTx          Kind = "tx"
	KindProposal    Kind = "proposal"
	KindVote        Kind = "vote"
	KindBlock       Kind = "block"
	KindEvidence    Kind = "evidence"
	KindAttestation Kind = "attestation"
	KindPing        Kind = "ping" // liveness and test messages
)

// MaxEnvelope caps any encoded envelope, whatever its kind, before decoding
// starts. No kind may allow a payload larger than this.
const MaxEnvelope = 4 << 20

var kinds = struct {
	sync.RWMutex // guards max
	max          map[Kind]int
}{max: map[Kind]int{
	KindOffer:       16 << 10,
	KindJob:         64 << 10,
	KindBid:         4 << 10,
	KindTx:          64 << 10,
	KindProposal:    MaxEnvelope - 4<<10,
	KindVote:        1 << 10,
	KindBlock:       MaxEnvelope - 4<<10,
	KindEvidence:    8 << 10,
	KindAttestation: 4 << 10,
	KindPing:        1 << 10,
}}

// RegisterKind adds a message kind with its payload limit. It panics if the
// kind exists or the limit is not in (0, MaxEnvelope-4KiB]: both are
// programming errors found at start-up.
func RegisterKind(k Kind, maxPayload int) {
	if k == "" || maxPayload <= 0 || maxPayload > MaxEnvelope-4<<10 {
		panic(fmt.Sprintf("protocol: RegisterKind(%q, %d): bad kind or limit", k, maxPayload))
	}
	kinds.Lock()
	defer kinds.Unlock()
	if _, ok := kinds.max[k]; ok {
		panic(fmt.Sprintf("protocol: kind %q registered twice", k))
	}
	kinds.max[k] = maxPayload
}

// MaxPayload is the payload limit of kind k; ok is false for an unknown kind.
func MaxPayload(k Kind) (limit int, ok bool) {
	kinds.RLock()
	defer kinds.RUnlock()
	limit, ok = kinds.max[k]
	return limit, ok
}

// Kinds lists the registered kinds in order, for documentation and tests.
func Kinds() []Kind {
	kinds.RLock()
	defer kinds.RUnlock()
	out := make([]Kind, 0, len(kinds.max))
	for k := range kinds.max {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
