package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/strom-dev/strom/internal/restclient"
)

// withSavepointTrigger makes `strom savepoint` (whose subcommand inspect
// is in savepoint.go) also Flink's trigger and dispose forms:
//
//	strom savepoint JOBID [DIR]       trigger a savepoint, print its path
//	strom savepoint --dispose PATH    delete a savepoint
//
// A first argument "inspect" is still the subcommand: cobra resolves
// subcommands before it runs the parent.
func withSavepointTrigger(cmd *cobra.Command) *cobra.Command {
	var dispose string
	cmd.Use = "savepoint JOBID [DIR] | --dispose PATH | inspect PATH"
	cmd.Short = "Trigger or dispose of a savepoint (flink savepoint), or inspect one"
	cmd.Long = `strom savepoint JOBID [DIR] takes a savepoint of the running job into a new
directory below DIR (default: the cluster's savepoint directory) and prints
its path; the job keeps running. strom savepoint --dispose PATH deletes
the savepoint at PATH through the cluster. strom savepoint inspect PATH
reads a savepoint or checkpoint here, without a cluster.`
	cmd.Args = cobra.RangeArgs(0, 2)
	cmd.Flags().StringVarP(&dispose, "dispose", "d", "", "delete the savepoint at this path")
	return withClient(cmd, func(cmd *cobra.Command, c *restclient.Client, out io.Writer, args []string) error {
		if dispose == "" && len(args) == 0 {
			return cmd.Help()
		}
		if dispose != "" && len(args) > 0 {
			return errors.New("--dispose PATH takes no job id")
		}
		ctx := cmd.Context()
		if dispose != "" {
			fmt.Fprintf(out, "Disposing savepoint '%s'.\nWaiting for response...\n", dispose)
			if err := c.DisposeSavepoint(ctx, dispose); err != nil {
				return err
			}
			fmt.Fprintf(out, "Savepoint '%s' disposed.\n", dispose)
			return nil
		}
		dir := ""
		if len(args) == 2 {
			dir = args[1]
		}
		fmt.Fprintf(out, "Triggering savepoint for job %s.\nWaiting for response...\n", args[0])
		p, err := c.TriggerSavepoint(ctx, args[0], dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "Savepoint completed. Path: %s\nYou can resume your program from this savepoint with the run command.\n", p)
		return nil
	})
}
