package consensus

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/storage"
)

// Routes, under api.Prefix:
//
//	POST /chain/txs               submit a signed tx, or have the node sign one (SubmitTxRequest)
//	GET  /chain/status            ChainStatus
//	GET  /chain/blocks/{height}   BlockInfo ("latest" for the last block)
//	GET  /chain/txs/{id}          TxInfo (id: hex tx hash)
//	GET  /chain/accounts/{id}     AccountInfo (id: peer ID)
//	GET  /chain/validators        ValidatorsInfo of the height being decided

// SubmitTxRequest is the body of POST /chain/txs: either Tx (a signed
// KindTx envelope, base64 in JSON) or Type with its fields, which the node
// signs with its own key and next nonce: "transfer" (To, Amount), "stake"
// and "unstake" (Role, Amount), "unjail". Fee 0 means the minimum fee.
type SubmitTxRequest struct {
	Tx     []byte      `json:"tx,omitempty"`
	Type   string      `json:"type,omitempty"`
	To     string      `json:"to,omitempty"`
	Role   ledger.Role `json:"role,omitempty"`
	Amount uint64      `json:"amount,omitempty"`
	Fee    uint64      `json:"fee,omitempty"`
}

// SubmitTxResponse answers POST /chain/txs.
type SubmitTxResponse struct {
	ID     string `json:"id"` // hex tx hash
	Sender string `json:"sender,omitempty"`
	Nonce  uint64 `json:"nonce"`
}

// ChainStatus answers GET /chain/status.
type ChainStatus struct {
	ChainID    string `json:"chain_id"`
	PeerID     string `json:"peer_id"`
	Height     uint64 `json:"height"` // last committed block
	BlockHash  string `json:"block_hash"`
	StateHash  string `json:"state_hash"`
	Time       int64  `json:"time"` // header time of the last block, unix ms
	Round      int32  `json:"round"`
	Step       string `json:"step"`
	Validator  bool   `json:"validator"` // in the set of the height being decided
	Validators int    `json:"validators"`
	Mempool    int    `json:"mempool"`
	// Invariant is "ok" when the supply invariant (balances + stakes +
	// unbonding + escrow == genesis supply + minted - burned) and every
	// incremental state hash check out on the latest state, else the error.
	Invariant string `json:"invariant"`
}

// BlockInfo answers GET /chain/blocks/{height}.
type BlockInfo struct {
	Height     uint64        `json:"height"`
	Hash       string        `json:"hash"`
	Header     ledger.Header `json:"header"`
	Txs        []string      `json:"txs"` // hex tx hashes, in order
	Evidence   int           `json:"evidence"`
	Round      int32         `json:"commit_round"`
	Committers []string      `json:"committers"` // validators whose precommits certify the block
}

// TxInfo answers GET /chain/txs/{id}.
type TxInfo struct {
	ID     string        `json:"id"`
	Status string        `json:"status"` // "committed", "failed" (committed with a failure receipt) or "pending"
	Height uint64        `json:"height,omitempty"`
	Index  uint32        `json:"index,omitempty"`
	Sender string        `json:"sender,omitempty"`
	Type   ledger.TxType `json:"type,omitempty"`
	Nonce  uint64        `json:"nonce"`
	Fee    uint64        `json:"fee"`
	Error  string        `json:"error,omitempty"`
}

// AccountInfo answers GET /chain/accounts/{id}.
type AccountInfo struct {
	ID        string             `json:"id"`
	Balance   uint64             `json:"balance"`
	Nonce     uint64             `json:"nonce"`
	NextNonce uint64             `json:"next_nonce"` // including txs waiting in this node's mempool
	Bond      ledger.Bond        `json:"bond"`
	Escrow    uint64             `json:"escrow"`
	Unbonding []ledger.Unbonding `json:"unbonding,omitempty"`
	Height    uint64             `json:"height"` // state height of the answer
}

// ValidatorsInfo answers GET /chain/validators.
type ValidatorsInfo struct {
	Height     uint64             `json:"height"`
	Validators []ledger.Validator `json:"validators"`
}

// RegisterAPI adds the chain endpoints to srv.
func RegisterAPI(srv *api.Server, s *Service) error {
	routes := []api.Route{
		{Method: http.MethodPost, Path: "/chain/txs", Handler: api.JSON(s.apiSubmit)},
		{Method: http.MethodGet, Path: "/chain/status", Handler: api.JSON(s.apiStatus)},
		{Method: http.MethodGet, Path: "/chain/blocks/{height}", Handler: api.JSON(s.apiBlock)},
		{Method: http.MethodGet, Path: "/chain/txs/{id}", Handler: api.JSON(s.apiTx)},
		{Method: http.MethodGet, Path: "/chain/accounts/{id}", Handler: api.JSON(s.apiAccount)},
		{Method: http.MethodGet, Path: "/chain/validators", Handler: api.JSON(s.apiValidators)},
	}
	for _, r := range routes {
		if err := srv.Handle(r); err != nil {
			return err
		}
	}
	return nil
}

func badRequest(format string, args ...any) error {
	return api.Errorf(http.StatusBadRequest, "bad_request", format, args...)
}

func (s *Service) apiSubmit(r *http.Request, in SubmitTxRequest) (SubmitTxResponse, error) {
	if len(in.Tx) > 0 {
		if in.Type != "" {
			return SubmitTxResponse{}, badRequest("give either tx or type, not both")
		}
		h, err := s.Submit(r.Context(), in.Tx)
		if err != nil {
			return SubmitTxResponse{}, submitError(err)
		}
		vt, _ := s.eng.led.Verifier().VerifyTx(s.ChainID(), in.Tx)
		out := SubmitTxResponse{ID: hex.EncodeToString(h[:])}
		if vt != nil {
			out.Sender, out.Nonce = vt.Sender, vt.Tx.Nonce
		}
		return out, nil
	}
	var body any
	typ := ledger.TxType(in.Type)
	switch typ {
	case ledger.TxTransfer:
		if in.To == "" || in.Amount == 0 {
			return SubmitTxResponse{}, badRequest("transfer needs to and a positive amount")
		}
		body = ledger.Transfer{To: in.To, Amount: in.Amount}
	case ledger.TxStake, ledger.TxUnstake:
		if (in.Role != ledger.RoleValidator && in.Role != ledger.RoleProvider) || in.Amount == 0 {
			return SubmitTxResponse{}, badRequest("%s needs role validator or provider and a positive amount", typ)
		}
		if typ == ledger.TxStake {
			body = ledger.Stake{Role: in.Role, Amount: in.Amount}
		} else {
			body = ledger.Unstake{Role: in.Role, Amount: in.Amount}
		}
	case ledger.TxUnjail:
		body = ledger.Unjail{}
	default:
		return SubmitTxResponse{}, badRequest("unknown tx type %q (transfer, stake, unstake, unjail) and no signed tx", in.Type)
	}
	h, nonce, err := s.SubmitOwn(r.Context(), typ, in.Fee, body)
	if err != nil {
		return SubmitTxResponse{}, submitError(err)
	}
	return SubmitTxResponse{ID: hex.EncodeToString(h[:]), Sender: s.self.String(), Nonce: nonce}, nil
}

func submitError(err error) error {
	switch {
	case errors.Is(err, ErrMempoolFull):
		return api.Errorf(http.StatusServiceUnavailable, "mempool_full", "%v", err)
	case errors.Is(err, ErrTxRejected):
		return api.Errorf(http.StatusBadRequest, "tx_rejected", "%v", err)
	}
	return err
}

func (s *Service) apiStatus(*http.Request, struct{}) (ChainStatus, error) {
	v := s.view.Load()
	st := v.state
	out := ChainStatus{
		ChainID: s.ChainID(), PeerID: s.self.String(), Height: st.Height(), Time: st.Time(),
		Round: v.round, Step: v.step.String(), Mempool: s.pool.Len(),
	}
	last := st.LastBlockHash()
	out.BlockHash, out.StateHash = hex.EncodeToString(last[:]), st.HashHex()
	out.Invariant = "ok"
	if err := ledger.CheckInvariant(st); err != nil {
		out.Invariant = err.Error()
	}
	if v.vals != nil {
		_, out.Validator = v.vals.Get(s.self.String())
		out.Validator = out.Validator && !s.cfg.Follower
		out.Validators = v.vals.Len()
	}
	return out, nil
}

func (s *Service) apiBlock(r *http.Request, _ struct{}) (BlockInfo, error) {
	hs := r.PathValue("height")
	var h uint64
	if hs == "latest" {
		h = s.Height()
	} else {
		var err error
		if h, err = strconv.ParseUint(hs, 10, 64); err != nil || h == 0 {
			return BlockInfo{}, badRequest("height must be a positive integer or \"latest\"")
		}
	}
	sb, blk, err := s.eng.store.get(h)
	if errors.Is(err, ErrNoBlock) {
		return BlockInfo{}, api.Errorf(http.StatusNotFound, "not_found", "no block at height %d (chain at %d)", h, s.Height())
	}
	if err != nil {
		return BlockInfo{}, err
	}
	hash := blk.Hash()
	out := BlockInfo{Height: h, Hash: hex.EncodeToString(hash[:]), Header: blk.Header, Evidence: len(blk.Evidence),
		Round: sb.Certificate.Round, Txs: make([]string, len(blk.Txs))}
	for i, tx := range blk.Txs {
		th := ledger.TxHash(tx)
		out.Txs[i] = hex.EncodeToString(th[:])
	}
	for _, c := range sb.Certificate.Signatures {
		out.Committers = append(out.Committers, c.Validator)
	}
	return out, nil
}

func parseHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return h, badRequest("id must be 64 hex characters")
	}
	copy(h[:], b)
	return h, nil
}

func (s *Service) apiTx(r *http.Request, _ struct{}) (TxInfo, error) {
	h, err := parseHash(r.PathValue("id"))
	if err != nil {
		return TxInfo{}, err
	}
	out := TxInfo{ID: hex.EncodeToString(h[:])}
	loc, err := s.eng.store.tx(h)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if s.pool.Has(h) {
			out.Status = "pending"
			return out, nil
		}
		return TxInfo{}, api.Errorf(http.StatusNotFound, "not_found", "tx %x is neither committed nor pending here", h)
	case err != nil:
		return TxInfo{}, err
	}
	_, blk, err := s.eng.store.get(loc.Height)
	if err != nil {
		return TxInfo{}, err
	}
	if int(loc.Index) >= len(blk.Txs) {
		return TxInfo{}, fmt.Errorf("%w: tx index %d in block %d", ErrCorruptStore, loc.Index, loc.Height)
	}
	out.Status, out.Height, out.Index, out.Error = "committed", loc.Height, loc.Index, loc.Error
	if loc.Error != "" {
		out.Status = "failed"
	}
	if vt, err := s.eng.led.Verifier().VerifyTx(s.ChainID(), blk.Txs[loc.Index]); err == nil {
		out.Sender, out.Type, out.Nonce, out.Fee = vt.Sender, vt.Tx.Type, vt.Tx.Nonce, vt.Tx.Fee
	}
	return out, nil
}

func (s *Service) apiAccount(r *http.Request, _ struct{}) (AccountInfo, error) {
	id := r.PathValue("id")
	st := s.State()
	a, _ := st.Account(id)
	out := AccountInfo{ID: id, Balance: a.Balance, Nonce: a.Nonce, NextNonce: s.pool.NextNonce(id),
		Bond: st.Bond(id), Escrow: st.Escrow(id), Height: st.Height()}
	for _, u := range st.Unbonding() {
		if u.Account == id {
			out.Unbonding = append(out.Unbonding, u)
		}
	}
	return out, nil
}

func (s *Service) apiValidators(*http.Request, struct{}) (ValidatorsInfo, error) {
	st := s.State()
	vals, err := ledger.ValidatorSet(st, st.Height()+1)
	if err != nil {
		return ValidatorsInfo{}, err
	}
	return ValidatorsInfo{Height: st.Height() + 1, Validators: vals}, nil
}
