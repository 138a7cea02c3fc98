package consensus

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/protocol"
)

// The write-ahead record (WAL) holds every proposal and vote this node
// signed for the heights not yet committed, each with the height, round and
// step it was signed at, written and fsynced before the message leaves the
// node. After a crash the Service replays the records of the current height
// into the machine (bft.Machine.StartHeight), which then never signs a
// different message for a slot it already signed.
//
// Each record is one key "w/"+seq (big-endian) whose value is
//
//	uint32 CRC-32C of payload || uint32 len(payload) || payload
//
// with payload the CBOR of walRecord. A record that fails its check is
// repaired (deleted) only when it is the last one: that is a write torn by
// the crash. Anywhere else it means the store is corrupt, and start-up stops
// with ErrCorruptWAL rather than risk signing twice.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walRecord is one signed message and the position it was signed at.
type walRecord struct {
	Height  uint64      `cbor:"1,keyasint"`
	Round   int32       `cbor:"2,keyasint"`
	Step    bft.Step    `cbor:"3,keyasint"`
	Message bft.Message `cbor:"4,keyasint"`
}

func encodeWALRecord(r *walRecord) ([]byte, error) {
	payload, err := protocol.Marshal(r)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint32(out[0:4], crc32.Checksum(payload, castagnoli))
	binary.BigEndian.PutUint32(out[4:8], uint32(len(payload)))
	return append(out, payload...), nil
}

func decodeWALRecord(v []byte) (*walRecord, error) {
	if len(v) < 8 {
		return nil, fmt.Errorf("record of %d bytes", len(v))
	}
	n := binary.BigEndian.Uint32(v[4:8])
	if uint64(len(v)-8) != uint64(n) {
		return nil, fmt.Errorf("record length %d, header says %d", len(v)-8, n)
	}
	payload := v[8:]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(v[0:4]) {
		return nil, fmt.Errorf("checksum mismatch")
	}
	var r walRecord
	if err := protocol.Unmarshal(payload, &r); err != nil {
		return nil, err
	}
	if r.Message.Height() != r.Height {
		return nil, fmt.Errorf("message height %d in record of height %d", r.Message.Height(), r.Height)
	}
	return &r, nil
}

// wal is the write-ahead record over the consensus keyspace. It is used
// from the Service's loop only.
type wal struct {
	kv      KV
	next    uint64   // sequence number of the next record
	keys    [][]byte // keys of the live records, in order
	heights []uint64 // height of each live record
}

// loadedWAL is what openWAL found.
type loadedWAL struct {
	records  []*walRecord
	repaired bool // a torn last record was deleted
}

// openWAL reads every record, repairing a torn last one.
func openWAL(kv KV) (*wal, loadedWAL, error) {
	w := &wal{kv: kv}
	var out loadedWAL
	type raw struct{ key, val []byte }
	var all []raw
	err := kv.Iterate(prefixWAL, func(k, v []byte) error {
		all = append(all, raw{k, v})
		return nil
	})
	if err != nil {
		return nil, out, fmt.Errorf("consensus: read WAL: %w", err)
	}
	for i, r := range all {
		if len(r.key) != len(prefixWAL)+8 {
			return nil, out, fmt.Errorf("%w: bad key %x", ErrCorruptWAL, r.key)
		}
		seq := binary.BigEndian.Uint64(r.key[len(prefixWAL):])
		rec, err := decodeWALRecord(r.val)
		if err != nil {
			if i == len(all)-1 {
				// A torn last write: the message was never sent (sending
				// waits for the sync), so dropping it is safe.
				if err := kv.Write(nil, [][]byte{r.key}); err != nil {
					return nil, out, fmt.Errorf("consensus: repair WAL: %w", err)
				}
				if err := kv.Sync(); err != nil {
					return nil, out, fmt.Errorf("consensus: repair WAL: %w", err)
				}
				out.repaired = true
				w.next = seq + 1
				break
			}
			return nil, out, fmt.Errorf("%w: record %d of %d (seq %d): %v", ErrCorruptWAL, i+1, len(all), seq, err)
		}
		out.records = append(out.records, rec)
		w.keys = append(w.keys, r.key)
		w.heights = append(w.heights, rec.Height)
		w.next = seq + 1
	}
	return w, out, nil
}

// append writes rec durably: when it returns nil the record survives a
// crash.
func (w *wal) append(rec *walRecord) error {
	v, err := encodeWALRecord(rec)
	if err != nil {
		return err
	}
	k := u64key(prefixWAL, w.next)
	if err := w.kv.Write([]KVPair{{Key: k, Val: v}}, nil); err != nil {
		return fmt.Errorf("consensus: WAL write: %w", err)
	}
	if err := w.kv.Sync(); err != nil {
		return fmt.Errorf("consensus: WAL sync: %w", err)
	}
	w.next++
	w.keys = append(w.keys, k)
	w.heights = append(w.heights, rec.Height)
	return nil
}

// pruneKeys returns the keys of records at or below height, for the atomic
// write that commits that height.
func (w *wal) pruneKeys(height uint64) [][]byte {
	var out [][]byte
	for i, h := range w.heights {
		if h <= height {
			out = append(out, w.keys[i])
		}
	}
	return out
}

// pruned forgets the records at or below height once their deletion landed.
func (w *wal) pruned(height uint64) {
	var keys [][]byte
	var hs []uint64
	for i, h := range w.heights {
		if h > height {
			keys = append(keys, w.keys[i])
			hs = append(hs, h)
		}
	}
	w.keys, w.heights = keys, hs
}
