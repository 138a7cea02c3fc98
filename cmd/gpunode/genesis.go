package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/node"
)

func newGenesisCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "genesis",
		Short: "Create and edit a chain's genesis file",
		Long: `genesis writes the file that defines a chain: its chain ID, parameters,
initial balances and initial validators (docs/GENESIS.md). Every peer of the
network needs the same file as <home>/genesis.json; ` + "`gpunode run`" + ` starts the
chain service when it is there.

  gpunode genesis new --chain-id mynet
  gpunode genesis add-account 12D3KooW... 10000000
  gpunode genesis add-validator 12D3KooW... 2000000
  gpunode genesis show`,
	}
	cmd.AddCommand(newGenesisNewCmd(), newGenesisAddAccountCmd(), newGenesisAddValidatorCmd(), newGenesisShowCmd())
	return cmd
}

// genesisPath is the file a genesis command works on: the value of flag
// (--genesis or -o) when given, else <home>/genesis.json.
func genesisPath(cmd *cobra.Command, flag string) (string, error) {
	if p, _ := cmd.Flags().GetString(flag); p != "" {
		return filepath.Abs(p)
	}
	home, err := resolveHome(cmd)
	if err != nil {
		return "", err
	}
	return node.Home(home).GenesisFile(), nil
}

func addGenesisFileFlag(cmd *cobra.Command) {
	addHomeFlag(cmd)
	cmd.Flags().String("genesis", "", "genesis file (default <home>/genesis.json)")
}

// parseAmount reads a positive token amount in the smallest unit.
func parseAmount(what, s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a whole number of tokens (0 to 18446744073709551615)", what, s)
	}
	if v == 0 {
		return 0, fmt.Errorf("%s must be positive", what)
	}
	return v, nil
}

func newGenesisNewCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "new [--chain-id ID]",
		Short: "Write a new genesis file with default parameters, no accounts and no validators",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			chainID, _ := cmd.Flags().GetString("chain-id")
			if len(args) == 1 {
				if chainID != "" && chainID != args[0] {
					return fmt.Errorf("chain ID given twice: %q and --chain-id %q", args[0], chainID)
				}
				chainID = args[0]
			}
			if chainID == "" {
				return errors.New("genesis new needs --chain-id (the network name, e.g. devnet)")
			}
			path, err := genesisPath(cmd, "output")
			if err != nil {
				return err
			}
			force, _ := cmd.Flags().GetBool("force")
			if _, err := os.Stat(path); err == nil && !force {
				return fmt.Errorf("%s exists; refusing to overwrite it (use --force)", path)
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			g := ledger.NewGenesis(chainID)
			g.GenesisTime = time.Now().UTC().Truncate(time.Second)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			if err := g.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (chain %s)\n", path, chainID)
			return nil
		},
	}
	addHomeFlag(cmd)
	cmd.Flags().String("chain-id", "", "chain ID: the network name (lower-case letters, digits, -)")
	cmd.Flags().StringP("output", "o", "", "file to write (default <home>/genesis.json)")
	cmd.Flags().Bool("force", false, "overwrite an existing file")
	return cmd
}

// editGenesis loads the genesis file, applies edit and saves it; on any
// error the file is left as it was.
func editGenesis(cmd *cobra.Command, edit func(*ledger.Genesis) error) (string, error) {
	path, err := genesisPath(cmd, "genesis")
	if err != nil {
		return "", err
	}
	g, err := ledger.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no genesis file at %s (run `gpunode genesis new` first)", path)
	}
	if err != nil {
		return "", err
	}
	if err := edit(g); err != nil {
		return "", err
	}
	return path, g.Save(path)
}

func newGenesisAddAccountCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add-account PEER-ID AMOUNT",
		Short: "Give a peer ID an initial balance (added to any balance it already has)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			amount, err := parseAmount("amount", args[1])
			if err != nil {
				return err
			}
			path, err := editGenesis(cmd, func(g *ledger.Genesis) error { return g.AddAccount(args[0], amount) })
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: account %s +%d\n", path, args[0], amount)
			return nil
		},
	}
	addGenesisFileFlag(cmd)
	return cmd
}

func newGenesisAddValidatorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add-validator PEER-ID STAKE",
		Short: "Make a peer ID an initial validator bonding STAKE (in addition to its balance)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			stake, err := parseAmount("stake", args[1])
			if err != nil {
				return err
			}
			path, err := editGenesis(cmd, func(g *ledger.Genesis) error { return g.AddValidator(args[0], stake) })
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: validator %s stake %d\n", path, args[0], stake)
			return nil
		},
	}
	addGenesisFileFlag(cmd)
	return cmd
}

func newGenesisShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Check a genesis file and print its accounts, validators and supply",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := genesisPath(cmd, "genesis")
			if err != nil {
				return err
			}
			g, err := ledger.Load(path)
			if err != nil {
				return err
			}
			if wantJSON(cmd) {
				return printJSON(cmd, g)
			}
			supply, err := g.Supply()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "file:\t%s\n", path)
			fmt.Fprintf(w, "chain ID:\t%s\n", g.ChainID)
			fmt.Fprintf(w, "genesis time:\t%s\n", g.GenesisTime.Format(time.RFC3339))
			fmt.Fprintf(w, "supply:\t%d\n", supply)
			fmt.Fprintf(w, "min fee:\t%d\n", g.Params.MinFee)
			fmt.Fprintf(w, "min validator stake:\t%d\n", g.Params.MinValidatorStake)
			fmt.Fprintf(w, "min provider stake:\t%d\n", g.Params.MinProviderStake)
			fmt.Fprintf(w, "unbonding period:\t%d blocks\n", g.Params.UnbondingPeriod)
			if err := w.Flush(); err != nil {
				return err
			}
			w = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "\nACCOUNT\tBALANCE")
			for _, a := range g.Accounts {
				fmt.Fprintf(w, "%s\t%d\n", a.ID, a.Balance)
			}
			fmt.Fprintln(w, "\nVALIDATOR\tSTAKE\tPOWER")
			for _, v := range g.Validators {
				fmt.Fprintf(w, "%s\t%d\t%d\n", v.ID, v.Stake, v.Power)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if err := g.Validate(); err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "\nnot ready to start a chain: %v\n", err)
			}
			return nil
		},
	}
	addGenesisFileFlag(cmd)
	addJSONFlag(cmd)
	return cmd
}
