package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/strom-dev/strom/internal/restclient"
)

func listCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the cluster's running and scheduled jobs (flink list)",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "also list the jobs that have ended")
	return withClient(cmd, func(cmd *cobra.Command, c *restclient.Client, out io.Writer, _ []string) error {
		fmt.Fprintln(out, "Waiting for response...")
		jobs, err := c.Jobs(cmd.Context())
		if err != nil {
			return err
		}
		printJobs(out, jobs, all)
		return nil
	})
}

// printJobs prints jobs in flink list's layout: running (and restarting)
// jobs, scheduled (CREATED) jobs, and with all the ended ones, each
// section oldest first.
func printJobs(w io.Writer, jobs []restclient.JobOverview, all bool) {
	var running, scheduled, ended []restclient.JobOverview
	for _, j := range jobs {
		// Flink's grouping: only CREATED is scheduled; every state that is
		// not globally terminal counts as running.
		switch j.State {
		case "CREATED":
			scheduled = append(scheduled, j)
		case "FINISHED", "CANCELED", "FAILED":
			ended = append(ended, j)
		default:
			running = append(running, j)
		}
	}
	section := func(title, none string, js []restclient.JobOverview) {
		if len(js) == 0 {
			fmt.Fprintln(w, none)
			return
		}
		slices.SortFunc(js, func(a, b restclient.JobOverview) int { return cmp.Compare(a.StartTime, b.StartTime) })
		fmt.Fprintln(w, title)
		for _, j := range js {
			fmt.Fprintf(w, "%s : %s : %s (%s)\n", time.UnixMilli(j.StartTime).Format("02.01.2006 15:04:05"), j.ID, j.Name, j.State)
		}
		fmt.Fprintln(w, "--------------------------------------------------------------")
	}
	section("------------------ Running/Restarting Jobs -------------------", "No running jobs.", running)
	section("----------------------- Scheduled Jobs -----------------------", "No scheduled jobs.", scheduled)
	if all {
		section("---------------------- Terminated Jobs -----------------------", "No terminated jobs.", ended)
	}
}

func cancelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cancel JOBID",
		Short: "Cancel a job (flink cancel)",
		Args:  cobra.ExactArgs(1),
	}
	return withClient(cmd, func(cmd *cobra.Command, c *restclient.Client, out io.Writer, args []string) error {
		fmt.Fprintf(out, "Cancelling job %s.\n", args[0])
		if err := c.CancelJob(cmd.Context(), args[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "Cancelled job %s.\n", args[0])
		return nil
	})
}

func stopCmd() *cobra.Command {
	var (
		dir   string
		drain bool
	)
	cmd := &cobra.Command{
		Use:   "stop [--savepoint-path DIR] [--drain] JOBID",
		Short: "Stop a job with a savepoint and print the savepoint's path (flink stop)",
		Long: `Stop the job with a savepoint into a new directory below DIR (default: the
cluster's savepoint directory) and print the savepoint's path, to resume
from with strom run -s PATH. With --drain the sources end their input
first, so every window fires before the savepoint.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVarP(&dir, "savepoint-path", "p", "", "directory to put the savepoint in")
	cmd.Flags().BoolVarP(&drain, "drain", "d", false, "end the sources' input before the savepoint (fires every window)")
	return withClient(cmd, func(cmd *cobra.Command, c *restclient.Client, out io.Writer, args []string) error {
		fmt.Fprintf(out, "Suspending job %q with a savepoint.\n", args[0])
		p, err := c.StopWithSavepoint(cmd.Context(), args[0], dir, drain)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "Savepoint completed. Path: %s\n", p)
		return nil
	})
}

func checkpointCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "checkpoint JOBID",
		Short: "Trigger a checkpoint of a job now (flink checkpoint; needs a cluster that supports it)",
		Args:  cobra.ExactArgs(1),
	}
	return withClient(cmd, func(cmd *cobra.Command, c *restclient.Client, out io.Writer, args []string) error {
		fmt.Fprintf(out, "Triggering checkpoint for job %s.\nWaiting for response...\n", args[0])
		id, err := c.TriggerCheckpoint(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "Checkpoint %d for job %s completed.\n", id, args[0])
		return nil
	})
}
