package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/market/agent"
	"github.com/gpunode/gpunode/protocol"
)

// The market commands talk to the local daemon's market endpoints
// (agent.RegisterAPI, the routes listed in market/agent/api.go); the
// daemon signs what it sends with its own key.

// marketClient is apiClient with a hint when the daemon serves no market
// route (it runs without the market agent, or without the role).
type marketClient struct{ c *api.Client }

func newMarketClient(cmd *cobra.Command) (marketClient, error) {
	c, err := apiClient(cmd)
	return marketClient{c}, err
}

// do calls the market route path (under /market) with role, the node role
// that serves it, for the hint.
func (mc marketClient) do(ctx context.Context, role, method, path string, in, out any) error {
	err := mc.c.Do(ctx, method, "/market"+path, in, out)
	var ae *api.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && strings.HasPrefix(ae.Message, "no endpoint") {
		// The route is missing, not the object.
		if role != "" {
			return fmt.Errorf("the node does not serve %s /market%s: it runs without the market or without the %s role (gpunode run --role %s)", method, path, role, role)
		}
		return fmt.Errorf("the node does not serve %s /market%s: it runs without the market", method, path)
	}
	return err
}

// marketQueryCmd is a GET of path(args) under /market printed as JSON
// with --json, else by text. T is the API's answer type.
func marketQueryCmd[T any](use, short, role string, args cobra.PositionalArgs, path func([]string) (string, error), text func(io.Writer, *T) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := path(args)
			if err != nil {
				return err
			}
			mc, err := newMarketClient(cmd)
			if err != nil {
				return err
			}
			var v T
			if err := mc.do(cmd.Context(), role, http.MethodGet, p, nil, &v); err != nil {
				return err
			}
			if wantJSON(cmd) {
				// An empty list is [] for scripts, whatever the node sent.
				if rv := reflect.ValueOf(&v).Elem(); rv.Kind() == reflect.Slice && rv.IsNil() {
					rv.Set(reflect.MakeSlice(rv.Type(), 0, 0))
				}
				return printJSON(cmd, &v)
			}
			return text(cmd.OutOrStdout(), &v)
		},
	}
	addHomeFlag(cmd)
	addJSONFlag(cmd)
	return cmd
}

// marketTxCmd is a POST to path(args) under /market that answers with the
// tx the daemon sent; done words the text line.
func marketTxCmd(use, short, long, role string, args cobra.PositionalArgs, path func([]string) (string, error), done func([]string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := path(args)
			if err != nil {
				return err
			}
			mc, err := newMarketClient(cmd)
			if err != nil {
				return err
			}
			var res agent.TxResponse
			if err := mc.do(cmd.Context(), role, http.MethodPost, p, nil, &res); err != nil {
				return err
			}
			if wantJSON(cmd) {
				return printJSON(cmd, res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: tx %s%s\n", done(args), res.Tx, atHeight(res.Height))
			return nil
		},
	}
	addHomeFlag(cmd)
	addJSONFlag(cmd)
	return cmd
}

func atHeight(h uint64) string {
	if h == 0 {
		return " (sent, not yet in a block)"
	}
	return fmt.Sprintf(" committed at height %d", h)
}

// jobPath is the API path of the job named by args[0] followed by suffix,
// after checking that the ID is a CID.
func jobPath(suffix string) func([]string) (string, error) {
	return func(args []string) (string, error) {
		if _, err := protocol.ParseCID(args[0]); err != nil {
			return "", fmt.Errorf("job ID %q is not a CID: %w", args[0], err)
		}
		return "/jobs/" + url.PathEscape(args[0]) + suffix, nil
	}
}

func fixedPath(p string) func([]string) (string, error) {
	return func([]string) (string, error) { return p, nil }
}

func newOffersCmd() *cobra.Command {
	return marketQueryCmd("offers", "The order book: every provider's standing offer this node holds", "",
		cobra.NoArgs, fixedPath("/offers"), printOffers)
}

func newPricesCmd() *cobra.Command {
	return marketQueryCmd("prices", "The price index per GPU model over recent awards (\"cpu\" for CPU-only work)", "",
		cobra.NoArgs, fixedPath("/prices"), printPrices)
}

func newLeasesCmd() *cobra.Command {
	return marketQueryCmd("leases", "This provider's leases: job, segment, price, deadline, progress, output", "provider",
		cobra.NoArgs, fixedPath("/leases"), printLeases)
}

func newJobCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Submit, follow, inspect and cancel compute jobs (renter)",
	}
	cmd.AddCommand(
		newJobSubmitCmd(),
		marketQueryCmd("status ID", "A job's state, segments, payments and why providers did not bid", "",
			cobra.ExactArgs(1), jobPath(""), printJob),
		marketQueryCmd("bids ID", "Every auction round of a job: bids, reasons for no bid, rejected bids", "renter",
			cobra.ExactArgs(1), jobPath("/bids"), printBids),
		marketQueryCmd("list", "This node's jobs", "renter",
			cobra.NoArgs, fixedPath("/jobs"), printJobList),
		marketTxCmd("cancel ID", "Cancel a job: no new leases, the unspent escrow returns to the renter",
			"", "renter", cobra.ExactArgs(1), jobPath("/cancel"),
			func(a []string) string { return "job " + a[0] + " cancelled" }),
	)
	return cmd
}

func newProviderCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "provider",
		Short: "This provider's offer and slots, and announcing its exit",
	}
	cmd.AddCommand(
		marketQueryCmd("status", "This provider's last offer, slots, running leases, earnings and exit state", "provider",
			cobra.NoArgs, fixedPath("/provider"), printProvider),
		marketTxCmd("exit", "Announce the provider's exit: no new bids, running leases finish",
			`exit sends the tx announcing that this provider leaves the market. It
stops bidding at once; leases it holds run to the end and are paid.`,
			"provider", cobra.NoArgs, fixedPath("/exit"),
			func([]string) string { return "exit announced" }),
	)
	return cmd
}

// shortID abbreviates a peer ID for tables: every Ed25519 peer ID starts
// with 12D3KooW, so its tail tells them apart. --json prints the whole ID.
func shortID(id string) string {
	if len(id) <= 12 {
		return id
	}
	return "…" + id[len(id)-8:]
}

// hardware renders an offer's GPUs and CPUs: "A100 x4, L4 x1 / 32 CPUs".
func hardware(o *agent.OfferView) string {
	var gpus []string
	for _, g := range o.GPUs {
		gpus = append(gpus, fmt.Sprintf("%s x%d", g.Model, g.Count))
	}
	cpus := fmt.Sprintf("%d CPUs", o.CPUs)
	if len(gpus) == 0 {
		return cpus
	}
	return strings.Join(gpus, ", ") + " / " + cpus
}

// priceList renders an offer's prices per segment: "A100/wasm=120".
func priceList(ps []agent.PriceListItem) string {
	if len(ps) == 0 {
		return "-"
	}
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s/%s=%d", cmp.Or(p.Model, "cpu"), p.Executor, p.Price))
	}
	return strings.Join(out, ",")
}

func rep(r agent.Rep) string { return fmt.Sprintf("%d/%d/%d", r.Completed, r.Failed, r.Slashed) }

func printOffers(out io.Writer, offers *[]agent.OfferView) error {
	if len(*offers) == 0 {
		_, err := fmt.Fprintln(out, "no offers: this node has seen no provider announce one")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROVIDER\tSTATUS\tREGION\tHARDWARE\tEXECUTORS\tPRICE/SEGMENT\tFREE\tSTAKE\tREP C/F/S\tCLASS")
	for i := range *offers {
		o := &(*offers)[i]
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", shortID(o.Provider), o.Status, dash(o.Region),
			hardware(o), dash(strings.Join(o.Executors, ",")), priceList(o.Prices), o.FreeSlots, o.Stake, rep(o.Reputation), dash(o.HardwareClass))
	}
	return w.Flush()
}

func printPrices(out io.Writer, prices *[]agent.PriceView) error {
	if len(*prices) == 0 {
		_, err := fmt.Fprintln(out, "no prices: this node has seen no lease awarded yet")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "MODEL\tCOUNT\tMIN\tQ1\tMEDIAN\tQ3\tMAX\t")
	for _, p := range *prices {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", p.Model, p.Count, p.Min, p.Q1, p.Median, p.Q3, p.Max)
	}
	return w.Flush()
}

func printLeases(out io.Writer, leases *[]agent.LeaseView) error {
	if len(*leases) == 0 {
		_, err := fmt.Fprintln(out, "no leases")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "JOB\tSEGMENT\tPRICE\tDEADLINE\tPROGRESS\tOUTPUT")
	for _, l := range *leases {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%s\n", l.Job, l.Segment, l.Price, l.Deadline, dash(l.Local), dash(l.Output))
	}
	return w.Flush()
}

func printJobList(out io.Writer, jobs *[]agent.JobView) error {
	if len(*jobs) == 0 {
		_, err := fmt.Fprintln(out, "no jobs")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "JOB\tSTATE\tDONE\tPAID\tSEGMENTS\tDEPOSIT\tESCROW")
	for _, j := range *jobs {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", j.Job, j.State, j.SegmentsDone, j.SegmentsPaid, j.Segments, j.Deposit, j.Escrow)
	}
	return w.Flush()
}

func printJob(out io.Writer, j *agent.JobView) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "job:\t%s\n", j.Job)
	fmt.Fprintf(w, "state:\t%s\n", j.State)
	if j.Renter != "" {
		fmt.Fprintf(w, "renter:\t%s\n", j.Renter)
	}
	if j.Program != "" {
		fmt.Fprintf(w, "program:\t%s\n", j.Program)
	}
	if j.Runtime != "" {
		fmt.Fprintf(w, "runtime:\t%s\n", j.Runtime)
	}
	fmt.Fprintf(w, "verify:\t%s\n", dash(j.Verify))
	fmt.Fprintf(w, "segments:\t%d/%d done, %d paid\n", j.SegmentsDone, j.Segments, j.SegmentsPaid)
	fmt.Fprintf(w, "max price:\t%d per segment\n", j.MaxPrice)
	fmt.Fprintf(w, "deposit:\t%d (escrow now %d)\n", j.Deposit, j.Escrow)
	fmt.Fprintf(w, "auctions:\t%d rounds, %d missed deadlines, %d wrong results\n", j.Auctions, j.Missed, j.Wrong)
	fmt.Fprintf(w, "fees:\t%d\n", j.Fees)
	fmt.Fprintf(w, "refund:\t%d\n", j.Refund)
	if err := w.Flush(); err != nil {
		return err
	}
	if len(j.SegmentList) > 0 {
		fmt.Fprintln(out)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "SEGMENT\tSTATE\tPROVIDERS\tOUTPUT")
		for _, s := range j.SegmentList {
			var provs []string
			for _, l := range s.Leases {
				provs = append(provs, shortID(l.Provider))
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", s.Index, s.State, dash(strings.Join(provs, ",")), dash(s.Output))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if err := printAmounts(out, "PAID TO\tAMOUNT", j.Paid); err != nil {
		return err
	}
	if err := printAmounts(out, "SLASHED\tSTAKE BURNED", j.Slashed); err != nil {
		return err
	}
	if len(j.NoBids) > 0 {
		fmt.Fprintln(out, "\nwhy no bids?")
		if err := printNoBids(out, j.NoBids); err != nil {
			return err
		}
	}
	return nil
}

// printAmounts prints a provider -> amount map as a table sorted by
// provider, nothing when it is empty.
func printAmounts(out io.Writer, header string, m map[string]uint64) error {
	if len(m) == 0 {
		return nil
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, header)
	for _, p := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(w, "%s\t%d\n", p, m[p])
	}
	return w.Flush()
}

func printNoBids(out io.Writer, nbs []agent.NoBidView) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROVIDER\tREASON\tDETAIL")
	for _, n := range nbs {
		fmt.Fprintf(w, "%s\t%s\t%s\n", n.Provider, n.Reason, dash(n.Detail))
	}
	return w.Flush()
}

func printBids(out io.Writer, b *agent.BidsView) error {
	fmt.Fprintf(out, "job %s: %d auction rounds\n", b.Job, len(b.Rounds))
	for _, r := range b.Rounds {
		state := "open, closes"
		if r.Closed {
			state = "closed"
		}
		fmt.Fprintf(out, "\nround %d: segments %s, %s %s\n", r.Round, segmentRanges(r.Segments), state,
			time.UnixMilli(r.CloseAt).UTC().Format(time.RFC3339Nano))
		if len(r.Awarded) > 0 {
			fmt.Fprintf(out, "awarded: segments %s\n", segmentRanges(r.Awarded))
		}
		if r.Error != "" {
			fmt.Fprintf(out, "award failed: %s\n", r.Error)
		}
		if len(r.Bids) == 0 {
			fmt.Fprintln(out, "no bids")
		} else {
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PROVIDER\tPRICE\tCAPACITY\tNONCE")
			for _, x := range r.Bids {
				fmt.Fprintf(w, "%s\t%d\t%d\t%d\n", x.Provider, x.Price, x.Capacity, x.Nonce)
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if len(r.NoBids) > 0 {
			fmt.Fprintln(out, "did not bid:")
			if err := printNoBids(out, r.NoBids); err != nil {
				return err
			}
		}
	}
	if len(b.Rejected) > 0 {
		fmt.Fprintln(out, "\nbids rejected by this node's gossip validator:")
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, reason := range slices.Sorted(maps.Keys(b.Rejected)) {
			fmt.Fprintf(w, "  %s:\t%d\n", reason, b.Rejected[reason])
		}
		return w.Flush()
	}
	return nil
}

// segmentRanges renders segment indexes compactly: "0-3,7".
func segmentRanges(segs []uint32) string {
	if len(segs) == 0 {
		return "none"
	}
	s := slices.Sorted(slices.Values(segs))
	var parts []string
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.FormatUint(uint64(s[i]), 10))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", s[i], s[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func printProvider(out io.Writer, p *agent.ProviderView) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "provider:\t%s\n", p.Provider)
	fmt.Fprintf(w, "slots:\t%d free of %d\n", p.FreeSlots, p.TotalSlots)
	fmt.Fprintf(w, "running:\t%d leases\n", p.Running)
	fmt.Fprintf(w, "earned:\t%d\n", p.Earned)
	exiting := "no"
	if p.Exiting {
		exiting = "yes: no new bids; running leases finish"
	}
	fmt.Fprintf(w, "exiting:\t%s\n", exiting)
	if o := p.Offer; o != nil {
		fmt.Fprintf(w, "offer:\tseq %d, %s, expires %s\n", o.Seq, o.Status, time.UnixMilli(o.Expires).UTC().Format(time.RFC3339))
		fmt.Fprintf(w, "hardware:\t%s\n", hardware(o))
		if o.Region != "" {
			fmt.Fprintf(w, "region:\t%s\n", o.Region)
		}
		fmt.Fprintf(w, "executors:\t%s\n", dash(strings.Join(o.Executors, ", ")))
		fmt.Fprintf(w, "prices:\t%s\n", priceList(o.Prices))
		fmt.Fprintf(w, "stake:\t%d\n", o.Stake)
		fmt.Fprintf(w, "reputation:\t%d completed, %d failed, %d slashed, %d verified\n",
			o.Reputation.Completed, o.Reputation.Failed, o.Reputation.Slashed, o.Reputation.Verified)
		if o.HardwareClass != "" {
			fmt.Fprintf(w, "hardware class:\t%s\n", o.HardwareClass)
		}
	} else {
		fmt.Fprintf(w, "offer:\tnone announced yet\n")
	}
	return w.Flush()
}

// Job submission.

func newJobSubmitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "submit (--program CID | --runtime NAME) --segments N --max-price P",
		Short: "Open a job: deposit max price x segments x replicas in escrow and auction its segments",
		Long: `submit asks the local node (renter role) to open a job on the chain and to
auction its segments among the providers. It prints the job ID and the
deposit moved into escrow; with --wait it follows the job until it is done
or cancelled, printing a line whenever its progress changes, and exits
non-zero if the job ends cancelled.

The work is a wasm module (--program, the root CID from "gpunode data add
module.wasm") or a runtime the providers allowlist (--runtime). Give either
no --input or one input CID per segment.

--verify is replicate:K (every segment on K providers whose outputs must
agree, default replicate:1) or spotcheck:P (validators re-run a fraction P
of the segments; P as 0.1, .1 or 10%).`,
		Args: cobra.NoArgs,
		RunE: runJobSubmit,
	}
	f := cmd.Flags()
	f.String("program", "", "wasm module: its root CID")
	f.String("runtime", "", "a provider runtime's name, instead of --program")
	f.StringSlice("input", nil, "input root CID of a segment, in segment order (repeat, or comma-separated)")
	f.Uint32("segments", 0, "number of segments (required)")
	f.Uint64("max-price", 0, "highest price per segment (required)")
	f.Duration("deadline", 60*time.Second, "time a provider has for one segment (whole seconds)")
	f.String("verify", "", "replicate:K or spotcheck:P (default replicate:1)")
	f.String("executor", "", "executor (default wasm with --program, process with --runtime)")
	f.StringSlice("gpu-model", nil, "accepted GPU model (repeat for several; default any)")
	f.String("min-vram", "", "least memory per GPU, e.g. 40GiB or 24000MB")
	f.Uint32("gpus", 0, "GPUs per segment (0: CPU-only work; 1 when --gpu-model or --min-vram is given)")
	f.String("region", "", "providers' region (default any)")
	f.Uint64("salt", 0, "makes an otherwise equal job a new one (the job ID is the hash of its spec)")
	f.Duration("auction", 0, "how long each auction round stays open (0: the node's default)")
	f.Bool("wait", false, "follow the job until it is done or cancelled")
	f.Duration("poll", 500*time.Millisecond, "with --wait, how often to ask for the job's progress")
	_ = f.MarkHidden("poll")
	addHomeFlag(cmd)
	addJSONFlag(cmd)
	return cmd
}

// submitOutcome is what `job submit --json` prints: the daemon's answer
// and, with --wait, the job as it ended.
type submitOutcome struct {
	agent.SubmitJobResponse
	Final *agent.JobView `json:"final,omitempty"`
}

func runJobSubmit(cmd *cobra.Command, _ []string) error {
	req, err := submitRequest(cmd)
	if err != nil {
		return err
	}
	wait, _ := cmd.Flags().GetBool("wait")
	poll, _ := cmd.Flags().GetDuration("poll")
	if poll <= 0 {
		return fmt.Errorf("--poll %v must be positive", poll)
	}
	mc, err := newMarketClient(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var out submitOutcome
	if err := mc.do(ctx, "renter", http.MethodPost, "/jobs", req, &out.SubmitJobResponse); err != nil {
		return err
	}
	// Progress goes to stdout for people and to stderr when stdout is JSON.
	progress := cmd.OutOrStdout()
	if wantJSON(cmd) {
		progress = cmd.ErrOrStderr()
	}
	fmt.Fprintf(progress, "job %s opened at height %d: deposit %d in escrow (tx %s)\n", out.Job, out.Height, out.Deposit, out.Tx)
	if wait {
		j, err := followJob(ctx, mc, out.Job, poll, progress)
		if err != nil {
			return err
		}
		out.Final = &j
	}
	if wantJSON(cmd) {
		if err := printJSON(cmd, out); err != nil {
			return err
		}
	}
	if out.Final != nil && out.Final.State == "cancelled" {
		return fmt.Errorf("job %s ended cancelled: %d of %d segments done, refund %d", out.Job, out.Final.SegmentsDone, out.Final.Segments, out.Final.Refund)
	}
	return nil
}

// followJob polls the job every interval until it is done or cancelled,
// writing a progress line to w whenever the line changes.
func followJob(ctx context.Context, mc marketClient, id string, interval time.Duration, w io.Writer) (agent.JobView, error) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := ""
	for {
		var j agent.JobView
		if err := mc.do(ctx, "", http.MethodGet, "/jobs/"+url.PathEscape(id), nil, &j); err != nil {
			return j, fmt.Errorf("following job %s: %w", id, err)
		}
		if line := progressOf(&j); line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		switch j.State {
		case "done":
			fmt.Fprintf(w, "job %s done: %d segments, paid %d to %d providers, fees %d, refund %d\n",
				id, j.SegmentsDone, sumPaid(j.Paid), len(j.Paid), j.Fees, j.Refund)
			return j, nil
		case "cancelled":
			return j, nil
		}
		select {
		case <-ctx.Done():
			return j, fmt.Errorf("stopped following job %s (it goes on in the node): %w", id, ctx.Err())
		case <-tick.C:
		}
	}
}

// progressOf is the line --wait prints: state, segments done of total,
// leases awarded, missed deadlines and wrong results.
func progressOf(j *agent.JobView) string {
	leases := 0
	for _, s := range j.SegmentList {
		leases += len(s.Leases)
	}
	return fmt.Sprintf("%s: %d/%d segments done, %d leases, %d missed, %d wrong", j.State, j.SegmentsDone, j.Segments, leases, j.Missed, j.Wrong)
}

func sumPaid(m map[string]uint64) uint64 {
	var s uint64
	for _, v := range m {
		s += v
	}
	return s
}

// submitRequest builds the POST /market/jobs body from the flags, refusing
// what the chain would refuse with a message that names the flag.
func submitRequest(cmd *cobra.Command) (agent.SubmitJobRequest, error) {
	f := cmd.Flags()
	var req agent.SubmitJobRequest
	req.Program, _ = f.GetString("program")
	req.Runtime, _ = f.GetString("runtime")
	req.Inputs, _ = f.GetStringSlice("input")
	req.Segments, _ = f.GetUint32("segments")
	req.MaxPrice, _ = f.GetUint64("max-price")
	req.Executor, _ = f.GetString("executor")
	req.Region, _ = f.GetString("region")
	req.Salt, _ = f.GetUint64("salt")
	req.GPUCount, _ = f.GetUint32("gpus")
	models, _ := f.GetStringSlice("gpu-model")
	deadline, _ := f.GetDuration("deadline")
	auction, _ := f.GetDuration("auction")
	verify, _ := f.GetString("verify")
	minVRAM, _ := f.GetString("min-vram")

	switch {
	case req.Program == "" && req.Runtime == "":
		return req, errors.New("no work: give --program CID (a wasm module) or --runtime NAME")
	case req.Program != "" && req.Runtime != "":
		return req, errors.New("--program and --runtime both given: a job runs one or the other")
	case req.Segments == 0:
		return req, errors.New("--segments must be at least 1")
	case req.Segments > market.MaxSegments:
		return req, fmt.Errorf("--segments %d: at most %d", req.Segments, market.MaxSegments)
	case req.MaxPrice == 0:
		return req, errors.New("--max-price must be positive (tokens per segment)")
	case len(req.Inputs) != 0 && len(req.Inputs) != int(req.Segments):
		return req, fmt.Errorf("%d --input CIDs for %d segments: give one per segment, or none", len(req.Inputs), req.Segments)
	}
	if req.Program != "" {
		if _, err := protocol.ParseCID(req.Program); err != nil {
			return req, fmt.Errorf("--program %q is not a CID: %w", req.Program, err)
		}
	}
	for i, in := range req.Inputs {
		if _, err := protocol.ParseCID(in); err != nil {
			return req, fmt.Errorf("--input %d %q is not a CID: %w", i, in, err)
		}
	}

	secs, err := wholeSeconds(deadline)
	if err != nil {
		return req, fmt.Errorf("--deadline %v: %w", deadline, err)
	}
	req.Deadline = secs

	if auction < 0 || auction > market.MaxAuctionWindow || auction%time.Millisecond != 0 {
		return req, fmt.Errorf("--auction %v: want whole milliseconds up to %v (0: the node's default)", auction, market.MaxAuctionWindow)
	}
	req.AuctionMs = auction.Milliseconds()

	if verify != "" {
		if req.Verify, err = canonicalPolicy(verify); err != nil {
			return req, fmt.Errorf("--verify: %w", err)
		}
	}

	if minVRAM != "" {
		if req.MinVRAM, err = parseSize(minVRAM); err != nil {
			return req, fmt.Errorf("--min-vram: %w", err)
		}
	}
	// The chain keeps a job's GPU models sorted and unique.
	for _, m := range models {
		if m = strings.TrimSpace(m); m != "" {
			req.GPUModels = append(req.GPUModels, m)
		}
	}
	slices.Sort(req.GPUModels)
	req.GPUModels = slices.Compact(req.GPUModels)
	if len(req.GPUModels) > 0 || req.MinVRAM > 0 {
		if !f.Changed("gpus") {
			req.GPUCount = 1
		} else if req.GPUCount == 0 {
			return req, errors.New("--gpu-model and --min-vram ask for GPUs, but --gpus is 0")
		}
	}
	return req, nil
}

// wholeSeconds converts a segment deadline to the whole seconds the chain
// keeps.
func wholeSeconds(d time.Duration) (uint32, error) {
	const most = 7 * 24 * time.Hour // market.maxSegmentTimeout
	switch {
	case d < time.Second:
		return 0, errors.New("want at least 1s")
	case d%time.Second != 0:
		return 0, errors.New("want whole seconds")
	case d > most:
		return 0, fmt.Errorf("want at most %v", most)
	}
	return uint32(d / time.Second), nil
}

// canonicalPolicy turns a policy as a user writes it ("spotcheck:.1",
// "spotcheck:10%", "spotcheck:0.10", "replicate:02") into the canonical
// form market.ParsePolicy wants on the wire ("spotcheck:0.1",
// "replicate:2"). The fraction is read as a decimal, never as a float.
func canonicalPolicy(s string) (string, error) {
	kind, arg, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return "", fmt.Errorf("%q: want replicate:K or spotcheck:P", s)
	}
	var p market.Policy
	switch strings.ToLower(kind) {
	case "replicate":
		k, err := strconv.ParseUint(arg, 10, 32)
		if err != nil || k < 1 || k > market.MaxReplicas {
			return "", fmt.Errorf("%q: K must be a whole number 1..%d", s, market.MaxReplicas)
		}
		p = market.Policy{Kind: market.Replicate, K: uint32(k)}
	case "spotcheck":
		ppm, err := fractionPPM(arg)
		if err != nil {
			return "", fmt.Errorf("%q: %w", s, err)
		}
		p = market.Policy{Kind: market.SpotCheck, PPM: ppm}
	default:
		return "", fmt.Errorf("%q: unknown kind %q, want replicate:K or spotcheck:P", s, kind)
	}
	// The market's own parser has the last word on the wire form.
	if _, err := market.ParsePolicy(p.String()); err != nil {
		return "", err
	}
	return p.String(), nil
}

// fractionPPM reads a fraction in (0, 1] written as a decimal ("0.1",
// ".05", "1", "1.0") or a percentage ("10%", "2.5%") in parts per million,
// exactly.
func fractionPPM(s string) (uint32, error) {
	const bad = "the fraction P must be in (0, 1] such as 0.1 or 10%, with at most 6 decimals"
	scale := 6 // decimal places of a millionth
	if t, ok := strings.CutSuffix(s, "%"); ok {
		s, scale = t, 4
	}
	whole, frac, _ := strings.Cut(s, ".")
	if (whole == "" && frac == "") || !digits(whole) || !digits(frac) {
		return 0, errors.New(bad)
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > scale {
		return 0, errors.New(bad)
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 7 {
		return 0, errors.New(bad)
	}
	v, _ := strconv.ParseUint(cmp.Or(whole, "0")+frac+strings.Repeat("0", scale-len(frac)), 10, 64)
	if v == 0 || v > 1_000_000 {
		return 0, errors.New(bad)
	}
	return uint32(v), nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// sizeUnits are the units parseSize accepts; no unit means bytes.
var sizeUnits = map[string]uint64{
	"":    1,
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// parseSize reads a byte size: a whole number with an optional unit, B,
// KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024).
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("%q: want a whole number with a unit such as 40GiB, 24GB or 512MiB", s)
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 || n > (1<<64-1)/mult {
		return 0, fmt.Errorf("%q: size out of range", s)
	}
	return n * mult, nil
}
