// Command strom is Strom's single binary: the demo, the Nexmark benchmark
// and (later) every cluster role and the CLI.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/strom-dev/strom/internal/approle"
)

// defaultGCPercent is the GOGC the binary uses unless GOGC is set. A
// streaming job's live heap is small (bounded in-flight batches plus its
// state) while it allocates fast, so at Go's default of 100 the collector
// runs hundreds of times a second: Nexmark q0 did 435 collections in 1.7 s
// and spent a third of its CPU on them. 400 trades heap headroom for
// throughput (BENCHMARKS.md); GOGC and GOMEMLIMIT still override.
const defaultGCPercent = 400

func main() {
	// Package strom (which this binary imports for demo and nexmark) took
	// "jobmanager" or "taskmanager" out of os.Args for a job binary's
	// application mode; here they are this CLI's own commands.
	approle.Restore()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "strom:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "strom",
		Short:         "Strom: a distributed, stateful stream processor",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(versionCmd(), demoCmd())
	root.AddCommand(nexmarkCmd())
	root.AddCommand(withSavepointTrigger(savepointCmd()))
	root.AddCommand(runCmd())
	root.AddCommand(listCmd())
	root.AddCommand(infoCmd())
	root.AddCommand(cancelCmd())
	root.AddCommand(stopCmd())
	root.AddCommand(checkpointCmd())
	root.AddCommand(jobmanagerCmd(), taskmanagerCmd(), clusterCmd())
	return root
}
