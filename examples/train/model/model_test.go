package model

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"unsafe"
)

func TestExpLogMatchMath(t *testing.T) {
	r := rng{s: 1}
	for range 100000 {
		x := r.uniform() * 50
		if got, want := exp(x), math.Exp(x); math.Abs(got-want) > 2*math.Abs(want)*0x1p-52 {
			t.Fatalf("exp(%v) = %v; want %v", x, got, want)
		}
		y := math.Abs(x) + 1e-9
		if got, want := log(y), math.Log(y); math.Abs(got-want) > 2*math.Abs(want)*0x1p-52+1e-300 {
			t.Fatalf("log(%v) = %v; want %v", y, got, want)
		}
	}
	if exp(1000) != math.Inf(1) || exp(-1000) != 0 || !math.IsNaN(log(-1)) {
		t.Fatal("edge cases")
	}
}

func TestTrainingLearns(t *testing.T) {
	task, err := NewTask(42, 16)
	if err != nil {
		t.Fatal(err)
	}
	hold, _ := task.Shard(-1, 2000)
	w := Zero(16)
	acc0, loss0, _ := Evaluate(w, hold)
	// Four segments from the same start, averaged: one round of
	// data-parallel training.
	var seg []Weights
	for i := range 4 {
		s, _ := task.Shard(i, 1000)
		w2, err := Train(w, s, DefaultConfig)
		if err != nil {
			t.Fatal(err)
		}
		seg = append(seg, w2)
	}
	avg, err := Average(seg)
	if err != nil {
		t.Fatal(err)
	}
	acc, loss, _ := Evaluate(avg, hold)
	t.Logf("accuracy %.3f -> %.3f, loss %.3f -> %.3f", acc0, acc, loss0, loss)
	if acc < 0.9 || loss >= loss0 {
		t.Fatalf("after training: accuracy %.3f, loss %.3f (from %.3f); want >= 0.9 and lower loss", acc, loss, loss0)
	}
	if bytes.Equal(EncodeWeights(seg[0]), EncodeWeights(seg[1])) {
		t.Fatal("different shards gave identical weights")
	}
}

func TestDeterministicBytes(t *testing.T) {
	run := func() []byte {
		task, _ := NewTask(7, 8)
		s, _ := task.Shard(3, 500)
		w, err := Train(Zero(8), s, DefaultConfig)
		if err != nil {
			t.Fatal(err)
		}
		return append(EncodeShard(s), EncodeWeights(w)...)
	}
	if !bytes.Equal(run(), run()) {
		t.Fatal("same inputs, different bytes")
	}
}

func TestShapeErrors(t *testing.T) {
	task, _ := NewTask(1, 4)
	s, _ := task.Shard(0, 10)
	if _, err := Train(Zero(5), s, DefaultConfig); !errors.Is(err, ErrShape) {
		t.Errorf("dim mismatch: %v", err)
	}
	if _, err := Train(Zero(4), s, Config{Epochs: 1, LR: 0, BatchSize: 1}); !errors.Is(err, ErrShape) {
		t.Errorf("zero LR: %v", err)
	}
	if _, err := Average([]Weights{Zero(4), Zero(3)}); !errors.Is(err, ErrShape) {
		t.Errorf("average mismatch: %v", err)
	}
	if _, err := NewTask(1, 0); !errors.Is(err, ErrShape) {
		t.Errorf("dim 0: %v", err)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	task, _ := NewTask(9, 5)
	s, _ := task.Shard(1, 33)
	for _, enc := range []func(Shard) []byte{EncodeShard, EncodeShardV1} {
		s2, err := DecodeShard(enc(s))
		if err != nil || !bytes.Equal(enc(s2), enc(s)) {
			t.Fatalf("shard round trip: %v", err)
		}
	}
	w := Weights{W: []float64{1, -2.5, 3, 0, 1e-300, 7}}
	w2, err := DecodeWeights(EncodeWeights(w))
	if err != nil || !bytes.Equal(EncodeWeights(w2), EncodeWeights(w)) {
		t.Fatalf("weights round trip: %v", err)
	}
	bad := EncodeWeights(Weights{W: []float64{math.NaN(), 1}})
	if _, err := DecodeWeights(bad); !errors.Is(err, ErrFormat) {
		t.Fatalf("NaN weight: %v", err)
	}
}

func FuzzDecodeWeights(f *testing.F) {
	f.Add(EncodeWeights(Zero(3)))
	f.Add([]byte("GNW1\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := DecodeWeights(b)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeWeights(w), b) {
			t.Fatal("accepted bytes do not re-encode identically")
		}
	})
}

func FuzzDecodeShard(f *testing.F) {
	task, _ := NewTask(1, 2)
	s, _ := task.Shard(0, 3)
	f.Add(EncodeShard(s))
	f.Add(EncodeShardV1(s))
	f.Add([]byte("GNS1\x01\x00\x00\x00\x01\x00\x00\x00"))
	f.Add([]byte("GNS2\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("GNS2\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x00\x00\x00\x00\x00\xf0\x7f" + "\x00\x00\x00\x00\x00\x00\xf0\x3f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeShard(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		enc := EncodeShard
		if bytes.HasPrefix(b, []byte("GNS1")) {
			enc = EncodeShardV1
		}
		if !bytes.Equal(enc(s), b) {
			t.Fatal("accepted bytes do not re-encode identically")
		}
		// Either format holds the same shard.
		for _, other := range [][]byte{EncodeShard(s), EncodeShardV1(s)} {
			s2, err := DecodeShard(other)
			if err != nil || !bytes.Equal(EncodeShard(s2), EncodeShard(s)) {
				t.Fatalf("re-encoded shard does not decode to the same shard: %v", err)
			}
		}
	})
}

// GNS1 and GNS2 hold the same shard, which trains to the same weights.
func TestShardFormats(t *testing.T) {
	task, _ := NewTask(3, 7)
	s, _ := task.Shard(2, 101)
	v1, v2 := EncodeShardV1(s), EncodeShard(s)
	if string(v2[:4]) != "GNS2" || len(v2) != 16+8*101*8 {
		t.Fatalf("EncodeShard wrote %q, %d bytes; want GNS2, %d bytes", v2[:4], len(v2), 16+8*101*8)
	}
	var ws [][]byte
	for _, b := range [][]byte{v1, v2} {
		d, err := DecodeShard(b)
		if err != nil {
			t.Fatalf("DecodeShard(%s): %v", b[:4], err)
		}
		w, err := Train(Zero(7), d, DefaultConfig)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, EncodeWeights(w))
	}
	if !bytes.Equal(ws[0], ws[1]) {
		t.Fatal("GNS1 and GNS2 of one shard train to different weights")
	}
}

func TestDecodeShardRejects(t *testing.T) {
	task, _ := NewTask(4, 2)
	s, _ := task.Shard(0, 3)
	good := EncodeShard(s)
	f64 := func(b []byte, off int, v float64) []byte {
		b = bytes.Clone(b)
		for i := range 8 {
			b[off+i] = byte(math.Float64bits(v) >> (8 * i))
		}
		return b
	}
	set := func(off int, v byte) []byte {
		b := bytes.Clone(good)
		b[off] = v
		return b
	}
	labels := 16 + 8*6
	for name, b := range map[string][]byte{
		"empty":           nil,
		"short header":    good[:15],
		"reserved":        set(12, 1),
		"dim 0":           set(4, 0),
		"rows":            set(8, 4),
		"truncated":       good[:len(good)-1],
		"trailing":        append(bytes.Clone(good), 0),
		"NaN feature":     f64(good, 16+8, math.NaN()),
		"inf feature":     f64(good, 16, math.Inf(-1)),
		"label 2":         f64(good, labels, 2),
		"label -0":        f64(good, labels+8, math.Copysign(0, -1)),
		"label 0.5":       f64(good, labels+16, 0.5),
		"other magic":     append([]byte("GNS3"), good[4:]...),
		"v1 label 2":      func() []byte { b := EncodeShardV1(s); b[len(b)-1] = 2; return b }(),
		"v1 inf feature":  f64(EncodeShardV1(s), 12, math.Inf(1)),
		"v1 short header": []byte("GNS1\x01\x00\x00\x00"),
	} {
		if _, err := DecodeShard(b); !errors.Is(err, ErrFormat) {
			t.Errorf("DecodeShard(%s) = %v; want ErrFormat", name, err)
		}
	}
}

// ViewShard accepts and refuses exactly what DecodeShard does, gives the
// same shard, and for aligned GNS2 uses the buffer in place.
func FuzzViewShard(f *testing.F) {
	task, _ := NewTask(5, 3)
	s, _ := task.Shard(0, 4)
	f.Add(EncodeShard(s))
	f.Add(EncodeShardV1(s))
	f.Add([]byte("GNS2\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("GNS2\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x00\x00\x00\x00\x00\xf0\x7f" + "\x00\x00\x00\x00\x00\x00\xf0\x3f"))
	f.Add([]byte("GNS2\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x00\x00\x00\x00\x00\xf0\x3f" + "\x00\x00\x00\x00\x00\x00\x00\x40"))
	f.Fuzz(func(t *testing.T, in []byte) {
		aligned := make([]uint64, (len(in)+7)/8+1)
		buf := unsafe.Slice((*byte)(unsafe.Pointer(&aligned[0])), 8*len(aligned))
		for _, b := range [][]byte{append(buf[:0], in...), append(buf[1:1], in...)} { // aligned, then not
			want, werr := DecodeShard(b)
			got, gerr := ViewShard(b)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("DecodeShard error %v, ViewShard error %v", werr, gerr)
			}
			if gerr != nil {
				if !errors.Is(gerr, ErrFormat) {
					t.Fatalf("error %v does not wrap ErrFormat", gerr)
				}
				continue
			}
			if !bytes.Equal(EncodeShard(got), EncodeShard(want)) {
				t.Fatal("ViewShard and DecodeShard give different shards")
			}
		}
	})
}

func TestViewShardInPlace(t *testing.T) {
	task, _ := NewTask(6, 3)
	s, _ := task.Shard(0, 5)
	b := EncodeShard(s) // make([]byte) of this size is 8-byte aligned
	v, err := ViewShard(b)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.Pointer(&v.X[0]) != unsafe.Pointer(&b[16]) || unsafe.Pointer(&v.Y[0]) != unsafe.Pointer(&b[16+8*15]) {
		t.Fatal("ViewShard copied an aligned GNS2 shard")
	}
	if v.Rows() != 5 || !bytes.Equal(EncodeShard(v), b) {
		t.Fatal("ViewShard gives another shard")
	}
}
