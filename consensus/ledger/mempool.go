package ledger

import "fmt"

// CheckTx is the mempool's admission check of an encoded tx against the
// latest state: authentic (through the ledger's Verifier, so Apply later
// finds it cached), a nonce not already used, a fee of at least MinFee that
// the sender's balance covers now. A nonce above the account's is accepted:
// the mempool holds it until the gap is filled (Propose skips it until
// then). The body is not executed; it may still fail with a receipt.
func (l *Ledger) CheckTx(st *State, raw []byte) (*VerifiedTx, error) {
	v, err := l.verifier.VerifyTx(st.chainID, raw)
	if err != nil {
		return nil, err
	}
	a, _ := st.Account(v.Sender)
	switch {
	case v.Tx.Nonce < a.Nonce:
		return nil, fmt.Errorf("%w: nonce %d already used (account at %d)", ErrBadNonce, v.Tx.Nonce, a.Nonce)
	case v.Tx.Fee < st.params.MinFee:
		return nil, fmt.Errorf("%w: %d < %d", ErrFeeTooLow, v.Tx.Fee, st.params.MinFee)
	case a.Balance < v.Tx.Fee:
		return nil, fmt.Errorf("%w: %s has %d, fee %d", ErrCannotPayFee, v.Sender, a.Balance, v.Tx.Fee)
	}
	return v, nil
}
