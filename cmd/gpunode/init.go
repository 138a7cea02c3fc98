package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/protocol"
)

func newInitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a data directory with a new identity key and a config file",
		Long: `init creates the data directory, a new Ed25519 identity (its peer ID is
also this node's account address; the key file has mode 0600) and a config
file listing every setting. It never overwrites an existing key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := resolveHome(cmd)
			if err != nil {
				return err
			}
			network, _ := cmd.Flags().GetString("network")
			if v, ok := os.LookupEnv(envName("network")); ok && !cmd.Flags().Changed("network") {
				network = v
			}
			if err := protocol.ValidateNetwork(network); err != nil {
				return err
			}
			if err := os.MkdirAll(home, 0o700); err != nil {
				return fmt.Errorf("create home: %w", err)
			}
			h := node.Home(home)
			key, err := node.InitKey(h.KeyFile())
			if errors.Is(err, node.ErrKeyExists) {
				return fmt.Errorf("%s already holds a key; refusing to overwrite it (remove it yourself to start a new identity)", h.KeyFile())
			}
			if err != nil {
				return err
			}
			id, err := peer.IDFromPrivateKey(key)
			if err != nil {
				return err
			}
			if _, err := os.Stat(h.ConfigFile()); errors.Is(err, os.ErrNotExist) {
				if err := writeDefaultConfig(h.ConfigFile(), newRunCmd(), map[string]string{"network": network}); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "home:    %s\n", home)
			fmt.Fprintf(out, "network: %s\n", network)
			fmt.Fprintf(out, "peer ID: %s\n", id)
			return nil
		},
	}
	addHomeFlag(cmd)
	cmd.Flags().String("network", "devnet", "network name, written into the config file")
	return cmd
}

func newIDCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Print this node's peer ID (its account address)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := resolveHome(cmd)
			if err != nil {
				return err
			}
			key, err := node.LoadKey(node.Home(home).KeyFile())
			if err != nil {
				return fmt.Errorf("%w (run `gpunode init --home %s` first)", err, home)
			}
			id, err := peer.IDFromPrivateKey(key)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
	addHomeFlag(cmd)
	return cmd
}
