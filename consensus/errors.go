package consensus

import "errors"

// Sentinel errors. Match them with errors.Is.
var (
	ErrCorruptWAL   = errors.New("consensus: corrupt write-ahead record")
	ErrCorruptStore = errors.New("consensus: corrupt block store")
	ErrNoBlock      = errors.New("consensus: no such block")
	ErrTxRejected   = errors.New("consensus: tx rejected")
	ErrKnownTx      = errors.New("consensus: tx already known")
	ErrMempoolFull  = errors.New("consensus: mempool full")
	ErrBadCommit    = errors.New("consensus: invalid commit")
	ErrStopped      = errors.New("consensus: service stopped")
	ErrNotFound     = errors.New("consensus: not found")
	ErrBadRequest   = errors.New("consensus: bad request")
)
