package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/compute"
	"github.com/gpunode/gpunode/compute/exec/process"
	"github.com/gpunode/gpunode/compute/gpu"
)

func newGPUsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gpus",
		Short: "Show the running node's GPUs, their telemetry and which lease holds each",
		Long: `gpus shows the hardware the running node offers: its GPUs (through NVML)
with live utilisation, memory, temperature, power and clocks, and the job and
lease each is allocated to; its CPU and memory; and its executors. A machine
without the NVIDIA driver offers CPU and memory only, and gpus says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			var hw compute.Hardware
			if err := c.Do(cmd.Context(), http.MethodGet, "/gpus", nil, &hw); err != nil {
				return err
			}
			if wantJSON(cmd) {
				return printJSON(cmd, hw)
			}
			return printHardware(cmd.OutOrStdout(), hw)
		},
	}
	addHomeFlag(cmd)
	addJSONFlag(cmd)
	return cmd
}

func printHardware(out io.Writer, hw compute.Hardware) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "cpu:\t%s, %d logical cores, %s memory\n", hw.CPU.Model, hw.CPU.LogicalCores, bytesIEC(hw.CPU.MemoryBytes))
	if hw.Driver != "" {
		fmt.Fprintf(w, "driver:\tNVIDIA %s\n", hw.Driver)
	}
	fmt.Fprintf(w, "executors:\t%s\n", strings.Join(hw.Executors, ", "))
	fmt.Fprintf(w, "jobs:\t%d running, %d queued\n", hw.Running, hw.Queued)
	fmt.Fprintf(w, "gpus:\t%d, %d free\n", len(hw.GPUs), hw.FreeGPUs)
	if err := w.Flush(); err != nil {
		return err
	}
	if len(hw.GPUs) == 0 {
		if hw.Source == gpu.SourceOS {
			fmt.Fprintln(out, "\nNo NVIDIA GPU or driver found: this node offers CPU and memory only.")
		} else {
			fmt.Fprintln(out, "\nThe NVIDIA driver answers but reports no GPU: this node offers CPU and memory only.")
		}
		if hw.Note != "" {
			fmt.Fprintf(out, "(%s)\n", hw.Note)
		}
		return nil
	}
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "IDX\tNAME\tMEMORY\tCC\tPCIE\tUTIL\tMEM USED\tTEMP\tPOWER\tSM CLOCK\tLEASE\tJOB\tUUID")
	for _, g := range hw.GPUs {
		t := g.Telemetry
		pcie := "-"
		if g.PCIeGen > 0 {
			pcie = fmt.Sprintf("gen%d x%d", g.PCIeGen, g.PCIeWidth)
		}
		power := fmt.Sprintf("%d W", t.PowerMilliwatts/1000)
		if g.PowerLimitMilliwatts > 0 {
			power += fmt.Sprintf(" / %d W", g.PowerLimitMilliwatts/1000)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d%%\t%s\t%d C\t%s\t%d MHz\t%s\t%s\t%s\n",
			g.Index, g.Name, bytesIEC(g.MemoryBytes), g.ComputeCapability, pcie, t.UtilizationPercent,
			bytesIEC(t.MemoryUsedBytes), t.TemperatureC, power, t.SMClockMHz, dash(g.Lease), dash(g.Job), g.UUID)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if hw.Note != "" {
		fmt.Fprintf(out, "\nwarning: %s\n", hw.Note)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// bytesIEC renders n as "40.0 GiB".
func bytesIEC(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newRuntimesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runtimes",
		Short: "List the native runtimes this provider allowlists (<home>/runtimes.toml)",
		Long: `runtimes lists the running node's allowlist of native runtimes: the only
programs the process executor will start for a lease. The allowlist is
<home>/runtimes.toml, read at start; without that file nothing is allowed.

  [runtimes.cuda-matmul]
  command = ["/opt/gpunode/matmul", "--in", "{in}", "--out", "{out}", "{args}"]
  description = "CUDA matrix multiply"
  env = { OMP_NUM_THREADS = "4" }

{in}, {out} and {work} become the run's directories; "{args}" the job's
arguments (appended if absent). The program path must be absolute.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(cmd)
			if err != nil {
				return err
			}
			var rts []process.Runtime
			if err := c.Do(cmd.Context(), http.MethodGet, "/runtimes", nil, &rts); err != nil {
				return err
			}
			if rts == nil {
				rts = []process.Runtime{}
			}
			if wantJSON(cmd) {
				return printJSON(cmd, rts)
			}
			return printRuntimes(cmd.OutOrStdout(), rts)
		},
	}
	addHomeFlag(cmd)
	addJSONFlag(cmd)
	return cmd
}

func printRuntimes(out io.Writer, rts []process.Runtime) error {
	if len(rts) == 0 {
		_, err := fmt.Fprintln(out, "No runtimes allowlisted: the process executor refuses every job.\n"+
			"Add them to runtimes.toml in the node's home and restart (see `gpunode runtimes --help`).")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tCOMMAND\tENV\tDESCRIPTION")
	for _, r := range rts {
		keys := make([]string, 0, len(r.Env))
		for k := range r.Env {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Name, strings.Join(r.Command, " "), dash(strings.Join(keys, ",")), r.Description)
	}
	return w.Flush()
}
