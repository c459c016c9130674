package main

// The client commands (run, list, info, cancel, stop, savepoint,
// checkpoint) are shaped after Flink's CLI — names, flags and what they
// print — and do everything through the REST API (internal/restclient).
// --jobmanager (-m) or $STROM_JOBMANAGER says where the cluster is.

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/strom-dev/strom/internal/restclient"
)

// jobManagerFlag adds --jobmanager/-m to cmd; the returned function makes
// the client of the cluster it names.
func jobManagerFlag(cmd *cobra.Command) func() (*restclient.Client, error) {
	var addr string
	cmd.Flags().StringVarP(&addr, "jobmanager", "m", "",
		"REST address of the cluster's JobManager (default $"+restclient.EnvJobManager+", else "+restclient.DefaultAddress+")")
	return func() (*restclient.Client, error) {
		c, err := restclient.New(restclient.Address(addr))
		if err != nil {
			return nil, fmt.Errorf("--jobmanager: %w", err)
		}
		return c, nil
	}
}

// withClient adds --jobmanager to cmd and makes run its action, given a
// client of that cluster (closed after) and where to print.
func withClient(cmd *cobra.Command, run func(cmd *cobra.Command, c *restclient.Client, out io.Writer, args []string) error) *cobra.Command {
	client := jobManagerFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := client()
		if err != nil {
			return err
		}
		defer c.CloseIdleConnections()
		return run(cmd, c, cmd.OutOrStdout(), args)
	}
	return cmd
}
