package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/api"
)

// apiClient is the client for the daemon running on the command's --home.
func apiClient(cmd *cobra.Command) (*api.Client, error) {
	home, err := resolveHome(cmd)
	if err != nil {
		return nil, err
	}
	return api.ClientForDataDir(home)
}

// addJSONFlag adds --json, for output that scripts read.
func addJSONFlag(cmd *cobra.Command) {
	cmd.Flags().Bool("json", false, "print JSON instead of text")
}

func wantJSON(cmd *cobra.Command) bool {
	v, _ := cmd.Flags().GetBool("json")
	return v
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the running node's peer ID, network, roles and peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if wantJSON(cmd) {
				return printJSON(cmd, st)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "peer ID:\t%s\n", st.PeerID)
			fmt.Fprintf(w, "network:\t%s (chain %s)\n", st.Network, st.ChainID)
			fmt.Fprintf(w, "roles:\t%s\n", strings.Join(st.Roles, ", "))
			fmt.Fprintf(w, "peers:\t%d connected, %d in the DHT routing table\n", st.Peers, st.RoutingTable)
			fmt.Fprintf(w, "version:\t%s\n", st.Version)
			fmt.Fprintf(w, "uptime:\t%s\n", (time.Duration(st.UptimeSeconds) * time.Second).String())
			for _, a := range st.ListenAddrs {
				fmt.Fprintf(w, "listening:\t%s\n", a)
			}
			return w.Flush()
		},
	}
	addHomeFlag(cmd)
	addJSONFlag(cmd)
	return cmd
}
