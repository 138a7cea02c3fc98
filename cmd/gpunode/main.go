// Command gpunode is one peer of the gpunode market for GPU compute: run it as
// a provider, renter or validator with `gpunode run`, and talk to a running
// daemon with the other commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/compute/exec/wasm"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/internal/version"
)

func main() {
	// A wasm worker is this same binary re-executed by the wasm executor;
	// it must take over before anything else starts.
	wasm.RunWorkerIfRequested()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		if !errors.Is(err, errSilent) {
			fmt.Fprintln(os.Stderr, "gpunode:", err)
		}
		os.Exit(1)
	}
}

// errSilent is returned by commands that already told the user what went
// wrong.
var errSilent = errors.New("")

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "gpunode",
		Short: "A peer of the open market for GPU compute",
		Long: `gpunode makes this machine a peer of an open market for GPU compute.
Providers rent out GPUs and CPUs, renters buy compute, validators run the chain
that settles who owes whom.

Start with:  gpunode init --home DIR --network devnet
Then:        gpunode run --home DIR --role provider
Settings are flags, GPUNODE_* environment variables or keys of DIR/config.toml.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.String(),
	}
	root.AddCommand(
		newVersionCmd(),
		newInitCmd(),
		newIDCmd(),
		newRunCmd(),
		newStatusCmd(),
		newDevnetCmd(),
		newDataCmd(),
		newGenesisCmd(),
		newTransferCmd(),
		newStakeCmd(ledger.TxStake),
		newStakeCmd(ledger.TxUnstake),
		newChainCmd(),
		newGPUsCmd(),
		newRuntimesCmd(),
		newOffersCmd(),
		newPricesCmd(),
		newJobCmd(),
		newLeasesCmd(),
		newProviderCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "gpunode", version.String())
		},
	}
}

// addHomeFlag adds --home, the data directory every command works on.
func addHomeFlag(cmd *cobra.Command) {
	cmd.Flags().String("home", defaultHome(), "data directory (env GPUNODE_HOME)")
}
