package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/consensus/ledger"
)

// The chain commands talk to the local daemon's chain endpoints
// (consensus.RegisterAPI); the daemon signs the txs with its own key.

// chainClient is apiClient with a hint when the daemon runs no chain.
type chainClient struct{ c *api.Client }

func newChainClient(cmd *cobra.Command) (chainClient, error) {
	c, err := apiClient(cmd)
	return chainClient{c}, err
}

func (cc chainClient) do(ctx context.Context, method, path string, in, out any) error {
	err := cc.c.Do(ctx, method, path, in, out)
	var ae *api.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && strings.HasPrefix(ae.Message, "no endpoint") {
		// The route is missing, not the object: the daemon started
		// without <home>/genesis.json.
		return errors.New("the node runs no chain: its home had no genesis.json when it started (see `gpunode genesis`)")
	}
	return err
}

// txOutcome is what a submitting command prints: the submit answer and,
// unless --no-wait, the committed tx.
type txOutcome struct {
	consensus.SubmitTxResponse
	Tx *consensus.TxInfo `json:"tx,omitempty"`
}

func addSubmitFlags(cmd *cobra.Command) {
	addHomeFlag(cmd)
	addJSONFlag(cmd)
	cmd.Flags().Uint64("fee", 0, "fee in tokens (0: the chain's minimum fee)")
	cmd.Flags().Bool("no-wait", false, "return once the node accepted the tx, without waiting for a block")
	cmd.Flags().Duration("timeout", 60*time.Second, "how long to wait for the tx to be committed")
}

// submitTx sends req to the daemon, waits for inclusion unless --no-wait,
// and prints the outcome. A tx committed with a failure receipt is an
// error (after printing it).
func submitTx(cmd *cobra.Command, req consensus.SubmitTxRequest) error {
	req.Fee, _ = cmd.Flags().GetUint64("fee")
	noWait, _ := cmd.Flags().GetBool("no-wait")
	timeout, _ := cmd.Flags().GetDuration("timeout")
	cc, err := newChainClient(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var out txOutcome
	if err := cc.do(ctx, http.MethodPost, "/chain/txs", req, &out.SubmitTxResponse); err != nil {
		return err
	}
	if !noWait {
		ti, err := cc.waitTx(ctx, out.ID, timeout)
		if err != nil {
			return fmt.Errorf("tx %s: %w", out.ID, err)
		}
		out.Tx = &ti
	}
	if wantJSON(cmd) {
		if err := printJSON(cmd, out); err != nil {
			return err
		}
	} else {
		w := cmd.OutOrStdout()
		switch {
		case out.Tx == nil:
			fmt.Fprintf(w, "tx %s submitted (nonce %d); not waiting for a block\n", out.ID, out.Nonce)
		case out.Tx.Status == "failed":
			fmt.Fprintf(w, "tx %s included at height %d but FAILED: %s\n", out.ID, out.Tx.Height, out.Tx.Error)
		default:
			fmt.Fprintf(w, "tx %s committed at height %d (nonce %d)\n", out.ID, out.Tx.Height, out.Nonce)
		}
	}
	if out.Tx != nil && out.Tx.Status == "failed" {
		return errSilent
	}
	return nil
}

// waitTx polls the tx until it is in a block. The daemon answers 404 for a
// tx neither pending nor committed; one such answer can be the instant
// between the block store write and the mempool update, so only two in a
// row mean the tx was dropped.
func (cc chainClient) waitTx(ctx context.Context, id string, timeout time.Duration) (consensus.TxInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	missing := 0
	for {
		var ti consensus.TxInfo
		err := cc.do(ctx, http.MethodGet, "/chain/txs/"+id, nil, &ti)
		switch {
		case api.IsStatus(err, http.StatusNotFound):
			missing++
			if missing >= 2 {
				return ti, errors.New("dropped: neither pending nor committed (see the node's log)")
			}
		case err != nil && ctx.Err() == nil:
			return ti, err
		case err == nil && ti.Status != "pending":
			return ti, nil
		default:
			missing = 0
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ti, fmt.Errorf("not committed within %v (still pending; it may commit later)", timeout)
			}
			return ti, ctx.Err()
		case <-tick.C:
		}
	}
}

func newTransferCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "transfer TO AMOUNT",
		Short: "Send tokens from this node's account to a peer ID",
		Long: `transfer signs a transfer with the node's key, submits it through the local
daemon and waits until it is in a block (--no-wait returns at once). It
prints the tx ID and the height.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := peer.Decode(args[0]); err != nil {
				return fmt.Errorf("recipient %q is not a peer ID: %w", args[0], err)
			}
			amount, err := parseAmount("amount", args[1])
			if err != nil {
				return err
			}
			return submitTx(cmd, consensus.SubmitTxRequest{Type: string(ledger.TxTransfer), To: args[0], Amount: amount})
		},
	}
	addSubmitFlags(cmd)
	return cmd
}

// newStakeCmd is `stake` or `unstake` (typ).
func newStakeCmd(typ ledger.TxType) *cobra.Command {
	short := "Bond tokens from the balance as validator or provider stake"
	if typ == ledger.TxUnstake {
		short = "Start unbonding validator or provider stake (returned after the unbonding period)"
	}
	cmd := &cobra.Command{
		Use:       string(typ) + " validator|provider AMOUNT",
		Short:     short,
		Args:      cobra.ExactArgs(2),
		ValidArgs: []string{string(ledger.RoleValidator), string(ledger.RoleProvider)},
		RunE: func(cmd *cobra.Command, args []string) error {
			role := ledger.Role(args[0])
			if role != ledger.RoleValidator && role != ledger.RoleProvider {
				return fmt.Errorf("role %q: want validator or provider", args[0])
			}
			amount, err := parseAmount("amount", args[1])
			if err != nil {
				return err
			}
			return submitTx(cmd, consensus.SubmitTxRequest{Type: string(typ), Role: role, Amount: amount})
		},
	}
	addSubmitFlags(cmd)
	return cmd
}

func newChainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "chain",
		Short: "Query the chain through the local node: status, blocks, txs, accounts, validators",
	}
	cmd.AddCommand(
		chainQueryCmd("status", "The chain's height, last block and this node's part in consensus", cobra.NoArgs,
			func([]string) string { return "/chain/status" }, printChainStatus),
		chainQueryCmd("block HEIGHT", "A committed block (HEIGHT or \"latest\")", cobra.ExactArgs(1),
			func(a []string) string { return "/chain/blocks/" + url.PathEscape(a[0]) }, printBlock),
		chainQueryCmd("tx ID", "A tx by its ID (hex hash): pending, committed or failed", cobra.ExactArgs(1),
			func(a []string) string { return "/chain/txs/" + url.PathEscape(a[0]) }, printTx),
		newChainAccountCmd(),
		chainQueryCmd("validators", "The validator set deciding the next height", cobra.NoArgs,
			func([]string) string { return "/chain/validators" }, printValidators),
	)
	return cmd
}

// chainQueryCmd is a GET of path(args) printed as JSON with --json, else
// by text. T is the API's answer type.
func chainQueryCmd[T any](use, short string, args cobra.PositionalArgs, path func([]string) string, text func(*tabwriter.Writer, *T)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			cc, err := newChainClient(cmd)
			if err != nil {
				return err
			}
			var v T
			if err := cc.do(cmd.Context(), http.MethodGet, path(args), nil, &v); err != nil {
				return err
			}
			return printChain(cmd, &v, text)
		},
	}
	addHomeFlag(cmd)
	addJSONFlag(cmd)
	return cmd
}

func printChain[T any](cmd *cobra.Command, v *T, text func(*tabwriter.Writer, *T)) error {
	if wantJSON(cmd) {
		return printJSON(cmd, v)
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	text(w, v)
	return w.Flush()
}

func newChainAccountCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "account [PEER-ID]",
		Short: "An account's balance, nonce, stakes and unbonding (default: this node's)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cc, err := newChainClient(cmd)
			if err != nil {
				return err
			}
			var id string
			if len(args) == 1 {
				if _, err := peer.Decode(args[0]); err != nil {
					return fmt.Errorf("%q is not a peer ID: %w", args[0], err)
				}
				id = args[0]
			} else {
				var st consensus.ChainStatus
				if err := cc.do(cmd.Context(), http.MethodGet, "/chain/status", nil, &st); err != nil {
					return err
				}
				id = st.PeerID
			}
			var a consensus.AccountInfo
			if err := cc.do(cmd.Context(), http.MethodGet, "/chain/accounts/"+url.PathEscape(id), nil, &a); err != nil {
				return err
			}
			return printChain(cmd, &a, printAccount)
		},
	}
	addHomeFlag(cmd)
	addJSONFlag(cmd)
	return cmd
}

func printChainStatus(w *tabwriter.Writer, s *consensus.ChainStatus) {
	fmt.Fprintf(w, "chain ID:\t%s\n", s.ChainID)
	fmt.Fprintf(w, "height:\t%d\n", s.Height)
	if s.Time > 0 {
		fmt.Fprintf(w, "block time:\t%s\n", time.UnixMilli(s.Time).UTC().Format(time.RFC3339Nano))
	}
	fmt.Fprintf(w, "block hash:\t%s\n", s.BlockHash)
	fmt.Fprintf(w, "state hash:\t%s\n", s.StateHash)
	fmt.Fprintf(w, "deciding:\theight %d, round %d, %s\n", s.Height+1, s.Round, s.Step)
	role := "follower"
	if s.Validator {
		role = "validator"
	}
	fmt.Fprintf(w, "this node:\t%s (%s)\n", s.PeerID, role)
	fmt.Fprintf(w, "validators:\t%d\n", s.Validators)
	fmt.Fprintf(w, "mempool:\t%d txs\n", s.Mempool)
	fmt.Fprintf(w, "supply invariant:\t%s\n", s.Invariant)
}

func printBlock(w *tabwriter.Writer, b *consensus.BlockInfo) {
	fmt.Fprintf(w, "height:\t%d\n", b.Height)
	fmt.Fprintf(w, "hash:\t%s\n", b.Hash)
	fmt.Fprintf(w, "time:\t%s\n", time.UnixMilli(b.Header.Time).UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(w, "proposer:\t%s\n", b.Header.Proposer)
	fmt.Fprintf(w, "commit round:\t%d\n", b.Round)
	fmt.Fprintf(w, "committers:\t%d\n", len(b.Committers))
	fmt.Fprintf(w, "evidence:\t%d\n", b.Evidence)
	fmt.Fprintf(w, "txs:\t%d\n", len(b.Txs))
	for _, id := range b.Txs {
		fmt.Fprintf(w, "  \t%s\n", id)
	}
}

func printTx(w *tabwriter.Writer, t *consensus.TxInfo) {
	fmt.Fprintf(w, "id:\t%s\n", t.ID)
	fmt.Fprintf(w, "status:\t%s\n", t.Status)
	if t.Status == "pending" {
		return
	}
	fmt.Fprintf(w, "height:\t%d (index %d)\n", t.Height, t.Index)
	fmt.Fprintf(w, "type:\t%s\n", t.Type)
	fmt.Fprintf(w, "sender:\t%s\n", t.Sender)
	fmt.Fprintf(w, "nonce:\t%d\n", t.Nonce)
	fmt.Fprintf(w, "fee:\t%d\n", t.Fee)
	if t.Error != "" {
		fmt.Fprintf(w, "error:\t%s\n", t.Error)
	}
}

func printAccount(w *tabwriter.Writer, a *consensus.AccountInfo) {
	fmt.Fprintf(w, "account:\t%s\n", a.ID)
	fmt.Fprintf(w, "balance:\t%d\n", a.Balance)
	fmt.Fprintf(w, "nonce:\t%d (next %d)\n", a.Nonce, a.NextNonce)
	fmt.Fprintf(w, "validator stake:\t%d\n", a.Bond.Validator)
	fmt.Fprintf(w, "provider stake:\t%d\n", a.Bond.Provider)
	if a.Bond.Jailed {
		fmt.Fprintf(w, "jailed:\tuntil height %d\n", a.Bond.JailedUntil)
	}
	if a.Escrow > 0 {
		fmt.Fprintf(w, "escrow:\t%d\n", a.Escrow)
	}
	for _, u := range a.Unbonding {
		fmt.Fprintf(w, "unbonding:\t%d %s stake, released after height %d\n", u.Amount, u.Role, u.Release)
	}
	fmt.Fprintf(w, "as of height:\t%d\n", a.Height)
}

func printValidators(w *tabwriter.Writer, v *consensus.ValidatorsInfo) {
	var total int64
	for _, x := range v.Validators {
		total += x.Power
	}
	fmt.Fprintf(w, "validator set of height %d: %d validators, total power %d\n\n", v.Height, len(v.Validators), total)
	fmt.Fprintln(w, "VALIDATOR\tSTAKE\tPOWER\tSHARE")
	for _, x := range v.Validators {
		share := 0.0
		if total > 0 {
			share = 100 * float64(x.Power) / float64(total)
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s%%\n", x.ID, x.Stake, x.Power, strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", share), "0"), "."))
	}
}
