package protocol

import "testing"

// BenchmarkOpen measures decoding and authenticating a small signed
// envelope: what a gossipsub validator does per message.
func BenchmarkOpen(b *testing.B) {
	body := vecValue{U: 7, S: "hi", B: []byte{1, 2, 3}, Items: []vecInner{{"gpu", 1}}}
	data, _, err := Seal(edKey(b, "alice"), vecChain, KindBid, vecTime, body)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(data, vecChain); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "envelopes/s")
}

// BenchmarkUnmarshal measures the strict decode (decode, data model walk,
// re-encode and compare) of a value with every field kind.
func BenchmarkUnmarshal(b *testing.B) {
	cases := valueCases()
	data := MustMarshal(cases[len(cases)-1].v)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var v vecValue
		if err := Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "values/s")
}
