package consensus

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/protocol"
)

func FuzzDecodeWALRecord(f *testing.F) {
	v := &bft.Vote{Type: bft.Prevote, Height: 3, Round: 1, Validator: "x", Signature: []byte{1, 2}}
	good, err := encodeWALRecord(&walRecord{Height: 3, Round: 1, Step: bft.StepPrevote, Message: bft.Message{Vote: v}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 12))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeWALRecord(data)
		if err != nil {
			return
		}
		// A record that decodes re-encodes to the same bytes (canonical).
		again, err := encodeWALRecord(r)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("decoded record re-encodes differently")
		}
	})
}

func FuzzSyncFrames(f *testing.F) {
	var buf bytes.Buffer
	_ = writeFrame(&buf, protocol.MustMarshal(&SyncRequest{From: 1, Count: 10}))
	f.Add(buf.Bytes())
	sb := protocol.MustMarshal(&StoredBlock{Block: []byte{0xa0}, Certificate: bft.Certificate{Height: 1}})
	buf.Reset()
	_ = writeFrame(&buf, sb)
	f.Add(buf.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			b, err := readFrame(r)
			if err != nil {
				return
			}
			var q SyncRequest
			_ = protocol.Unmarshal(b, &q)
			var s StoredBlock
			_ = protocol.Unmarshal(b, &s)
			var a Announcement
			_ = protocol.Unmarshal(b, &a)
		}
	})
}

// FuzzDecodeTxBatch: DecodeTxBatch never panics, and whatever it accepts
// holds 1 to MaxBatchTxs non-empty txs and re-encodes to the input.
func FuzzDecodeTxBatch(f *testing.F) {
	f.Add(protocol.MustMarshal(&TxBatch{Txs: [][]byte{{1}, {2, 3}}}))
	f.Add(protocol.MustMarshal(&TxBatch{}))
	f.Add([]byte{0xa1, 0x01, 0x98, 0x01, 0x41, 0x01})
	f.Add([]byte{0xa1, 0x01, 0x9f, 0x41, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeTxBatch(data)
		if err != nil {
			return
		}
		if len(b.Txs) == 0 || len(b.Txs) > MaxBatchTxs {
			t.Fatalf("accepted a batch of %d txs", len(b.Txs))
		}
		for _, tx := range b.Txs {
			if len(tx) == 0 {
				t.Fatal("accepted an empty tx")
			}
		}
		if again := protocol.MustMarshal(b); !bytes.Equal(again, data) {
			t.Fatalf("accepted %x but re-encodes to %x", data, again)
		}
	})
}
