package mat

import (
	"bytes"
	"testing"
)

func naive(a, b []float64, n int) []float64 {
	c := make([]float64, n*n)
	for i := range n {
		for j := range n {
			for k := range n {
				c[i*n+j] += a[i*n+k] * b[k*n+j]
			}
		}
	}
	return c
}

func TestMultiplyMatchesNaive(t *testing.T) {
	for _, n := range []int{1, 7, 64, 100} {
		a, b, err := Generate(uint64(n), n)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := Multiply(a, b, n), naive(a, b, n); !bytes.Equal(Encode(got), Encode(want)) {
			t.Fatalf("n=%d: blocked product differs from naive", n)
		}
	}
}

func TestFreivalds(t *testing.T) {
	n := 96
	a, b, _ := Generate(5, n)
	c := Multiply(a, b, n)
	if !Freivalds(a, b, c, n, 1, 20) {
		t.Fatal("correct product rejected")
	}
	for _, idx := range []int{0, n*n/2 + 3, n*n - 1} {
		bad := append([]float64(nil), c...)
		bad[idx]++
		if Freivalds(a, b, bad, n, 1, 20) {
			t.Fatalf("product wrong at %d accepted", idx)
		}
	}
	if Freivalds(a, b, c[:len(c)-1], n, 1, 20) {
		t.Fatal("short product accepted")
	}
	a2, _, _ := Generate(6, n)
	if Freivalds(a, b, Multiply(a2, b, n), n, 1, 20) {
		t.Fatal("product of other matrices accepted")
	}
}

func TestCodec(t *testing.T) {
	a, b, _ := Generate(1, 16)
	c := Multiply(a, b, 16)
	if !Exact(c) {
		t.Fatal("product not exact")
	}
	d, err := Decode(Encode(c), 16)
	if err != nil || !bytes.Equal(Encode(d), Encode(c)) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := Decode(Encode(c), 15); err == nil {
		t.Fatal("wrong n accepted")
	}
	if _, _, err := Generate(0, 0); err == nil {
		t.Fatal("n = 0 accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0}, 1)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		c, err := Decode(b, n)
		if err == nil && !bytes.Equal(Encode(c), b) {
			t.Fatal("decode/encode not identical")
		}
	})
}
