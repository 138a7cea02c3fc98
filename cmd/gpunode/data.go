package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gpunode/gpunode/node"
)

func newDataCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Add, fetch, list, pin and collect content-addressed data",
		Long: `data moves files and directories between nodes as content-addressed blocks.
"data add" chunks a file into the local node's store and prints its root CID;
"data get" fetches a root from the peers that hold it (found on the DHT, or
given with --peer), verifying every block, and writes it out. Paths are on
this machine; they are resolved to absolute paths for the daemon.`,
	}
	cmd.AddCommand(newDataAddCmd(), newDataGetCmd(), newDataLsCmd(),
		newDataPinCmd("pin", "Keep a root and its blocks through garbage collection"),
		newDataPinCmd("unpin", "Let garbage collection remove a root's blocks"),
		newDataGCCmd())
	return cmd
}

// dataSubcommand adds the flags every data subcommand has.
func dataSubcommand(cmd *cobra.Command) *cobra.Command {
	addHomeFlag(cmd)
	addJSONFlag(cmd)
	return cmd
}

func newDataAddCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add PATH",
		Short: "Add a file or directory to the node's store and print its root CID",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			p, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			noPin, _ := cmd.Flags().GetBool("no-pin")
			var res node.DataAddResult
			if err := c.Do(cmd.Context(), http.MethodPost, "/data/add", node.DataAddRequest{Path: p, NoPin: noPin}, &res); err != nil {
				return err
			}
			if wantJSON(cmd) {
				return printJSON(cmd, res)
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Root)
			return nil
		},
	}
	cmd.Flags().Bool("no-pin", false, "do not pin the root (the next gc removes it)")
	return dataSubcommand(cmd)
}

func newDataGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get CID -o PATH",
		Short: "Fetch a root from the peers holding it and write it to PATH",
		Long: `get asks the daemon to fetch the DAG under CID from the peers that hold it
(found on the DHT unless --peer is given), verifying every block, and to write
the file or directory to PATH. Blocks already held are not fetched again, so
a get that was interrupted resumes. Progress is a bar with rate and ETA on a
terminal, and a line a second otherwise.`,
		Args: cobra.ExactArgs(1),
		RunE: runDataGet,
	}
	f := cmd.Flags()
	f.StringP("output", "o", "", "where to write the file or directory (required)")
	f.StringSlice("peer", nil, "fetch from these peers (peer IDs or multiaddrs ending in /p2p/<ID>) instead of DHT holders")
	f.Bool("overwrite", false, "replace an existing file at the output path")
	f.Bool("detach", false, "start the transfer, print its ID and return without waiting")
	_ = cmd.MarkFlagRequired("output")
	return dataSubcommand(cmd)
}

func runDataGet(cmd *cobra.Command, args []string) error {
	c, err := apiClient(cmd)
	if err != nil {
		return err
	}
	f := cmd.Flags()
	out, _ := f.GetString("output")
	peers, _ := f.GetStringSlice("peer")
	overwrite, _ := f.GetBool("overwrite")
	detach, _ := f.GetBool("detach")
	outAbs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	req := node.DataGetRequest{Root: args[0], Output: outAbs, Peers: peers, Overwrite: overwrite}
	var st node.DataTransfer
	if err := c.Do(cmd.Context(), http.MethodPost, "/data/get", req, &st); err != nil {
		return err
	}
	if detach {
		if wantJSON(cmd) {
			return printJSON(cmd, st)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "transfer %s started\n", st.ID)
		return nil
	}
	var prog progressView
	if f, ok := cmd.OutOrStdout().(*os.File); ok && !wantJSON(cmd) && term.IsTerminal(int(f.Fd())) {
		prog = newBarView(f)
	} else {
		prog = &lineView{w: cmd.ErrOrStderr(), every: time.Second}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !st.Finished() {
		select {
		case <-cmd.Context().Done():
			prog.abort()
			return fmt.Errorf("stopped following transfer %s (it continues in the daemon): %w", st.ID, cmd.Context().Err())
		case <-tick.C:
		}
		if err := c.Do(cmd.Context(), http.MethodGet, "/data/transfers/"+url.PathEscape(st.ID), nil, &st); err != nil {
			prog.abort()
			return err
		}
		prog.update(st)
	}
	prog.finish(st)
	if wantJSON(cmd) {
		if err := printJSON(cmd, st); err != nil {
			return err
		}
	}
	if st.State == node.TransferFailed {
		return fmt.Errorf("transfer %s failed: %s", st.ID, st.Error)
	}
	if !wantJSON(cmd) {
		fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s: %s fetched in %.1fs (%s/s), %d blocks already held\n",
			st.Root, st.Output, fmtBytes(st.Bytes), st.Seconds, fmtBytes(rate(st.Bytes, st.Seconds)), st.SkippedBlocks)
		for _, p := range st.Peers {
			fmt.Fprintf(cmd.OutOrStdout(), "  from %s: %d blocks, %s\n", p.Peer, p.Blocks, fmtBytes(p.Bytes))
		}
	}
	return nil
}

// progressView shows a transfer's progress while the CLI follows it.
type progressView interface {
	update(st node.DataTransfer)
	finish(st node.DataTransfer)
	abort()
}

// barView is a progress bar with rate and ETA for a terminal.
type barView struct {
	bar *progressbar.ProgressBar
	max int64
}

func newBarView(w io.Writer) *barView {
	return &barView{max: -1, bar: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetDescription("finding holders"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
		progressbar.OptionShowElapsedTimeOnFinish(),
	)}
}

func (b *barView) update(st node.DataTransfer) {
	if m := st.TotalBytes; m > 0 && m != b.max {
		b.max = m
		b.bar.ChangeMax64(m)
	}
	desc := st.State
	if st.State == node.TransferFetching {
		desc = fmt.Sprintf("fetching from %d peers", len(st.Holders))
		if st.SkippedBlocks > 0 {
			desc += fmt.Sprintf(", %d blocks held", st.SkippedBlocks)
		}
	}
	b.bar.Describe(desc)
	_ = b.bar.Set64(st.ContentBytes)
}

func (b *barView) finish(st node.DataTransfer) {
	b.update(st)
	if st.State == node.TransferDone {
		_ = b.bar.Finish()
	} else {
		_ = b.bar.Exit()
	}
	fmt.Fprintln(os.Stdout)
}

func (b *barView) abort() { _ = b.bar.Exit() }

// lineView prints a plain progress line every so often, for logs and pipes.
type lineView struct {
	w     io.Writer
	every time.Duration
	last  time.Time
}

func (l *lineView) update(st node.DataTransfer) {
	if time.Since(l.last) < l.every {
		return
	}
	l.last = time.Now()
	fmt.Fprintln(l.w, progressLine(st))
}

func (l *lineView) finish(st node.DataTransfer) { fmt.Fprintln(l.w, progressLine(st)) }
func (l *lineView) abort()                      {}

// progressLine is one plain progress report of a transfer.
func progressLine(st node.DataTransfer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "transfer %s %s: %s", st.ID, st.State, fmtBytes(st.ContentBytes))
	if m := st.TotalBytes; m > 0 {
		fmt.Fprintf(&b, " / %s (%.1f%%)", fmtBytes(m), 100*float64(st.ContentBytes)/float64(m))
	}
	r := rate(st.Bytes, st.Seconds)
	fmt.Fprintf(&b, " at %s/s", fmtBytes(r))
	if left := st.TotalBytes - st.ContentBytes; left > 0 && r > 0 && !st.Finished() {
		fmt.Fprintf(&b, ", eta %s", (time.Duration(float64(left)/float64(r)) * time.Second).Round(time.Second))
	}
	fmt.Fprintf(&b, ", %d blocks, %d held already, %d peers", st.Blocks, st.SkippedBlocks, len(st.Peers))
	if st.Error != "" {
		fmt.Fprintf(&b, ": %s", st.Error)
	}
	return b.String()
}

func rate(bytes int64, secs float64) int64 {
	if secs <= 0 {
		return 0
	}
	return int64(float64(bytes) / secs)
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

func newDataLsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the roots held by the node, with sizes and whether pinned",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			var roots []node.DataRoot
			if err := c.Do(cmd.Context(), http.MethodGet, "/data", nil, &roots); err != nil {
				return err
			}
			if wantJSON(cmd) {
				return printJSON(cmd, roots)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ROOT\tNAME\tTYPE\tSIZE\tBLOCKS\tPINNED")
			for _, r := range roots {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%v\n", r.Root, r.Name, r.Type, fmtBytes(int64(r.Size)), r.Blocks, r.Pinned)
			}
			return w.Flush()
		},
	}
	return dataSubcommand(cmd)
}

func newDataPinCmd(verb, short string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   verb + " CID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			var res node.DataRoot
			if err := c.Do(cmd.Context(), http.MethodPost, "/data/"+verb, node.DataRootRequest{Root: args[0]}, &res); err != nil {
				return err
			}
			if wantJSON(cmd) {
				return printJSON(cmd, res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%sned %s\n", verb, res.Root)
			return nil
		},
	}
	return dataSubcommand(cmd)
}

func newDataGCCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove every block that no pinned root needs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			var res node.DataGCResult
			if err := c.Do(cmd.Context(), http.MethodPost, "/data/gc", nil, &res); err != nil {
				return err
			}
			if wantJSON(cmd) {
				return printJSON(cmd, res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d blocks (%s), %d orphan files\n", res.Blocks, fmtBytes(res.Bytes), res.Orphans)
			return nil
		},
	}
	return dataSubcommand(cmd)
}
