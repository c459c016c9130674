// Command strom is Strom's single binary: the demo, the Nexmark benchmark
// and (later) every cluster role and the CLI.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
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
	return root
}
