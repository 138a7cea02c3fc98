package ledger

import (
	"errors"
	"testing"
)

func TestCheckTx(t *testing.T) {
	f := newFixture(t, 6, 4)
	from, to := f.keys.IDs[4], f.keys.IDs[5]
	first := f.tx(from, TxTransfer, 1, Transfer{To: to, Amount: 1})
	v, err := f.l.CheckTx(f.st, first)
	if err != nil || v.Sender != from || v.Tx.Nonce != 0 || v.Hash != TxHash(first) {
		t.Fatalf("CheckTx(valid) = %+v, %v", v, err)
	}
	if n := f.l.Verifier().(*CachingVerifier).Len(); n != 1 {
		t.Fatalf("verifier cache holds %d txs; want 1", n)
	}
	future, _ := NewTx(TxTransfer, 5, 1, Transfer{To: to, Amount: 1})
	futureRaw, _ := f.keys.Sign(testChain, from, future)
	if _, err := f.l.CheckTx(f.st, futureRaw); err != nil {
		t.Fatalf("CheckTx(future nonce) = %v; want admitted", err)
	}
	f.run(first)
	lowFee, _ := NewTx(TxTransfer, 1, 0, Transfer{To: to, Amount: 1})
	lowFeeRaw, _ := f.keys.Sign(testChain, from, lowFee)
	hugeFee, _ := NewTx(TxTransfer, 1, 1<<40, Transfer{To: to, Amount: 1})
	hugeFeeRaw, _ := f.keys.Sign(testChain, from, hugeFee)
	bad := append([]byte(nil), first...)
	bad[len(bad)-1] ^= 1
	for _, c := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"used nonce", first, ErrBadNonce},
		{"fee below minimum", lowFeeRaw, ErrFeeTooLow},
		{"fee not payable", hugeFeeRaw, ErrCannotPayFee},
		{"bad signature", bad, ErrBadTx},
	} {
		if _, err := f.l.CheckTx(f.st, c.raw); !errors.Is(err, c.want) {
			t.Errorf("CheckTx(%s) = %v; want %v", c.name, err, c.want)
		}
	}
}

func TestCachingVerifierBounded(t *testing.T) {
	f := newFixture(t, 6, 4)
	c := NewCachingVerifier(nil, 3)
	var txs [][]byte
	for i := range 5 {
		txs = append(txs, f.tx(f.keys.IDs[4], TxTransfer, uint64(1+i), Transfer{To: f.keys.IDs[5], Amount: 1}))
	}
	for _, raw := range txs {
		if _, err := c.VerifyTx(testChain, raw); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() != 3 {
		t.Fatalf("cache holds %d; want 3", c.Len())
	}
	// A cached tx is not accepted for another chain.
	if _, err := c.VerifyTx("othernet", txs[4]); !errors.Is(err, ErrBadTx) {
		t.Fatalf("cached tx on another chain: %v", err)
	}
	bad := append([]byte(nil), txs[0]...)
	bad[len(bad)-1] ^= 1
	if _, err := c.VerifyTx(testChain, bad); !errors.Is(err, ErrBadTx) {
		t.Fatalf("bad signature through cache: %v", err)
	}
	if c.Len() != 3 {
		t.Fatalf("rejections were cached: %d", c.Len())
	}
}
