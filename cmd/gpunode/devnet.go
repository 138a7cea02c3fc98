package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/node"
)

// devnetNode is one process of a local network.
type devnetNode struct {
	Name    string   `json:"name"`
	Roles   []string `json:"roles"`
	Home    string   `json:"home"`
	PeerID  string   `json:"peer_id"`
	Addrs   []string `json:"addrs"`
	API     string   `json:"api"`
	cmd     *exec.Cmd
	exited  chan error
	logFile *os.File
}

func newDevnetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "devnet",
		Short: "Run a whole local network (validators, providers, renters) on loopback",
		Long: `devnet creates a data directory per node under --home (keys, configs), starts
each node as its own ` + "`gpunode run`" + ` process on 127.0.0.1, bootstrapped from the
first, waits until every node sees the others and the chain produces blocks on
every node, and prints where each node is and the chain height. A new devnet
gets a genesis (chain ID = network name, every node funded, validators bonded)
in every node's home; providers then bond provider stake.
Ctrl-C stops them all cleanly; running it again on the same --home resumes the
same network with the same identities. Each node's log is <home>/<name>/gpunode.log.

--scenario connect brings the network up, checks it and stops.

--scenario train (what make demo runs) trains a model on the market: the
renter generates a data set (--segments shards of --rows rows), adds it and
the training program (train.wasm, which make build writes next to gpunode),
waits for every provider's offer, and opens a segmented job (--verify,
default replicate:2). The providers (provider-i asks 400+100*i per segment,
8 slots each) bid, win leases, fetch, run and submit; the chain verifies and
settles; the renter fetches every segment's weights, averages them into the
model, adds it (model_cid) and evaluates it on a held-out split. Progress
is printed as it happens; --json prints the summary as one JSON object
(progress then goes to stderr). --kill-provider SIGKILLs the cheapest
provider right after it wins: its segments are re-auctioned after their
--deadline and the job still completes. The scenario fails unless every
segment is done, the model beats chance and the supply invariant holds.`,
		Args: cobra.NoArgs,
		RunE: runDevnet,
	}
	cmd.Flags().String("home", "devnet-home", "directory holding one data directory per node")
	cmd.Flags().String("network", "devnet", "network name")
	cmd.Flags().Int("validators", 4, "number of validator nodes")
	cmd.Flags().Int("providers", 3, "number of provider nodes")
	cmd.Flags().Int("renters", 1, "number of renter nodes")
	cmd.Flags().String("scenario", "", "run a scenario once the network is up, then stop: connect, train")
	cmd.Flags().Duration("ready-timeout", 90*time.Second, "how long to wait for the network to come up")
	addTrainFlags(cmd)
	addJSONFlag(cmd)
	return cmd
}

func runDevnet(cmd *cobra.Command, _ []string) error {
	start := time.Now()
	f := cmd.Flags()
	dir, _ := f.GetString("home")
	network, _ := f.GetString("network")
	nv, _ := f.GetInt("validators")
	np, _ := f.GetInt("providers")
	nr, _ := f.GetInt("renters")
	scenario, _ := f.GetString("scenario")
	readyTimeout, _ := f.GetDuration("ready-timeout")
	switch scenario {
	case "", "connect", "train":
	default:
		return fmt.Errorf("unknown --scenario %q (have: connect, train)", scenario)
	}
	if nv < 1 || np < 0 || nr < 0 {
		return errors.New("devnet needs at least one validator and no negative counts")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("devnet: find own binary: %w", err)
	}
	market := marketFlagsSupported()
	var train trainConfig
	if scenario == "train" {
		if !market {
			return errors.New("devnet: --scenario train needs a gpunode whose run command has the market flags (--price, --slots); this build has none")
		}
		if train, err = trainConfigFromFlags(cmd, self, np, nr); err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
	}
	out := cmd.OutOrStdout()
	progress := func(format string, args ...any) {
		if !wantJSON(cmd) {
			fmt.Fprintf(out, format+"\n", args...)
		} else {
			fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...)
		}
	}

	var nodes []*devnetNode
	add := func(role string, n int) {
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("%s-%d", role, i)
			nodes = append(nodes, &devnetNode{Name: name, Roles: []string{role}, Home: filepath.Join(dir, name)})
		}
	}
	add("validator", nv)
	add("provider", np)
	add("renter", nr)

	for _, n := range nodes {
		id, err := ensureHome(n.Home, network)
		if err != nil {
			return fmt.Errorf("devnet: %s: %w", n.Name, err)
		}
		n.PeerID = id.String()
	}
	progress("devnet %q: %d validators, %d providers, %d renters under %s", network, nv, np, nr, dir)
	if fresh, err := ensureDevnetGenesis(nodes, network, time.Now()); err != nil {
		return err
	} else if fresh {
		progress("wrote a new genesis (chain %s) into every node's home", network)
	}

	ctx := cmd.Context()
	defer stopDevnet(nodes, progress)
	var boot string
	provider := 0
	for i, n := range nodes {
		args := []string{"run", "--home", n.Home, "--network", network,
			"--role", strings.Join(n.Roles, ","),
			"--listen", "/ip4/127.0.0.1/tcp/0", "--disable-quic",
			"--api-listen", "127.0.0.1:0"}
		if slices.Contains(n.Roles, string(node.RoleProvider)) {
			if market {
				args = append(args, devnetProviderArgs(provider)...)
			}
			provider++
		}
		if i > 0 {
			args = append(args, "--bootstrap", boot)
		}
		if err := startDevnetNode(ctx, self, n, args); err != nil {
			return err
		}
		if i == 0 {
			for _, a := range n.Addrs {
				if strings.Contains(a, "/tcp/") {
					boot = a
					break
				}
			}
			if boot == "" {
				return fmt.Errorf("devnet: %s printed no TCP address", n.Name)
			}
		}
		progress("  started %-12s %s", n.Name, n.PeerID)
	}

	want := len(nodes) - 1
	if want > 10 {
		want = 10
	}
	progress("waiting for every node to see %d others in its DHT routing table ...", want)
	if err := waitDevnetReady(ctx, nodes, want, readyTimeout); err != nil {
		return err
	}
	progress("waiting for the chain to produce blocks on every node ...")
	height, err := waitDevnetChain(ctx, nodes, readyTimeout)
	if err != nil {
		return err
	}
	if h, err := stakeDevnetProviders(ctx, nodes, progress); err != nil {
		return err
	} else if h > height {
		height = h
	}
	if wantJSON(cmd) && scenario != "train" {
		if err := printJSON(cmd, map[string]any{"network": network, "home": dir, "nodes": nodes, "height": height}); err != nil {
			return err
		}
	} else if !wantJSON(cmd) {
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NODE\tPEER ID\tADDRESS\tAPI\tHOME")
		for _, n := range nodes {
			addr := ""
			if len(n.Addrs) > 0 {
				addr = strings.TrimSuffix(n.Addrs[0], "/p2p/"+n.PeerID)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", n.Name, n.PeerID, addr, n.API, n.Home)
		}
		w.Flush()
		fmt.Fprintf(out, "network is up: every node sees at least %d peers; chain %s at height %d.\n", want, network, height)
	}
	switch scenario {
	case "connect":
		return nil
	case "train":
		sum, err := runTrainScenario(ctx, train, nodes, start, readyTimeout, progress)
		if err != nil {
			return err
		}
		stopDevnet(nodes, progress) // the output ends with the summary
		if wantJSON(cmd) {
			if err := printJSON(cmd, sum); err != nil {
				return err
			}
		} else {
			sum.print(out)
		}
		return sum.check()
	}
	progress("running; Ctrl-C stops every node")
	select {
	case <-ctx.Done():
		return nil
	case err := <-firstExit(nodes):
		return fmt.Errorf("devnet: a node stopped: %w", err)
	}
}

// ensureHome creates a node's data directory with a key and a config file,
// or re-uses the existing one so a devnet resumes with the same identities.
func ensureHome(home, network string) (peer.ID, error) {
	h := node.Home(home)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return "", err
	}
	key, err := node.LoadKey(h.KeyFile())
	if errors.Is(err, os.ErrNotExist) {
		key, err = node.InitKey(h.KeyFile())
	}
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(h.ConfigFile()); errors.Is(err, os.ErrNotExist) {
		if err := writeDefaultConfig(h.ConfigFile(), newRunCmd(), map[string]string{"network": network}); err != nil {
			return "", err
		}
	}
	return peer.IDFromPrivateKey(key)
}

func startDevnetNode(ctx context.Context, self string, n *devnetNode, args []string) error {
	logf, err := os.OpenFile(filepath.Join(n.Home, "gpunode.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	n.logFile = logf
	c := exec.Command(self, args...)
	c.Stderr = logf
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C goes to devnet, which stops children in order
	stdout, err := c.StdoutPipe()
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return fmt.Errorf("devnet: start %s: %w", n.Name, err)
	}
	n.cmd = c
	n.exited = make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		announced := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if a, ok := strings.CutPrefix(line, "listening on "); ok && !announced {
				n.Addrs = append(n.Addrs, a)
			}
			if a, ok := strings.CutPrefix(line, "api on "); ok && !announced {
				n.API = a
				announced = true
				close(ready)
			}
		}
		_, _ = io.Copy(logf, stdout)
		n.exited <- c.Wait()
	}()
	select {
	case <-ready:
		return nil
	case err := <-n.exited:
		n.exited <- err
		return fmt.Errorf("devnet: %s exited at start (%v); see %s", n.Name, err, logf.Name())
	case <-time.After(60 * time.Second):
		return fmt.Errorf("devnet: %s did not start within 60s; see %s", n.Name, logf.Name())
	case <-ctx.Done():
		return ctx.Err()
	}
}

func waitDevnetReady(ctx context.Context, nodes []*devnetNode, want int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	clients := make([]*api.Client, len(nodes))
	for i, n := range nodes {
		c, err := api.ClientForDataDir(n.Home)
		if err != nil {
			return err
		}
		clients[i] = c
	}
	for {
		behind := ""
		for i, c := range clients {
			st, err := c.Status(ctx)
			if err != nil || st.RoutingTable < want {
				behind = nodes[i].Name
				break
			}
		}
		if behind == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devnet: %s did not see %d peers in time", behind, want)
		case err := <-firstExit(nodes):
			return fmt.Errorf("devnet: a node stopped while starting: %w", err)
		case <-tick.C:
		}
	}
}

// firstExit yields the exit of any node that stops.
func firstExit(nodes []*devnetNode) <-chan error {
	ch := make(chan error, len(nodes))
	for _, n := range nodes {
		if n.exited == nil {
			continue
		}
		go func(n *devnetNode) {
			err := <-n.exited
			n.exited <- err
			ch <- fmt.Errorf("%s: %v", n.Name, err)
		}(n)
	}
	return ch
}

// stopDevnet sends SIGTERM to every node, newest first, and waits for each;
// a second call does nothing.
func stopDevnet(nodes []*devnetNode, progress func(string, ...any)) {
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if n.cmd == nil || n.cmd.Process == nil {
			continue
		}
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
	}
	stopped := 0
	for _, n := range nodes {
		if n.cmd == nil {
			continue
		}
		stopped++
		select {
		case <-n.exited:
		case <-time.After(20 * time.Second):
			progress("  %s did not stop in 20s; killing it", n.Name)
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
		if n.logFile != nil {
			n.logFile.Close()
		}
		n.cmd, n.logFile = nil, nil
	}
	if stopped > 0 {
		progress("stopped %d nodes", stopped)
	}
}
