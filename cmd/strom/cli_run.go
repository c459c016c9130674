package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/restclient"
)

func runCmd() *cobra.Command {
	var (
		detached         bool
		parallelism      int
		savepoint        string
		allowNonRestored bool
	)
	cmd := &cobra.Command{
		Use:   "run [flags] BINARY [args]",
		Short: "Upload a job binary to the cluster and run it (flink run)",
		Long: `Upload BINARY (a Go program that imports strom) to the cluster and run it
with args. Without -d, wait for the job's end and print its result, as
flink run does; with -d, return once the job is submitted.

Flags go before BINARY: everything after it is the program's.`,
		Args: cobra.MinimumNArgs(1),
	}
	cmd.Flags().BoolVarP(&detached, "detached", "d", false, "return once the job is submitted")
	cmd.Flags().IntVarP(&parallelism, "parallelism", "p", 0, "the job's default parallelism (default: the program's)")
	cmd.Flags().StringVarP(&savepoint, "fromSavepoint", "s", "", "savepoint to start the job from")
	cmd.Flags().BoolVarP(&allowNonRestored, "allow-non-restored-state", "n", false,
		"start even if some state of the savepoint matches no operator of the job")
	// The program's own flags must not be parsed as strom's.
	cmd.Flags().SetInterspersed(false)
	return withClient(cmd, func(cmd *cobra.Command, c *restclient.Client, out io.Writer, args []string) error {
		if parallelism < 0 {
			return fmt.Errorf("-p %d: parallelism must be positive", parallelism)
		}
		ctx := cmd.Context()
		binID, err := c.UploadBinary(ctx, args[0])
		if err != nil {
			return err
		}
		jobID, err := c.RunBinary(ctx, binID, restclient.RunOptions{Args: args[1:], Parallelism: parallelism,
			SavepointPath: savepoint, AllowNonRestoredState: allowNonRestored})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "Job has been submitted with JobID %s\n", jobID)
		if detached {
			return nil
		}
		res, err := c.WaitJob(ctx, jobID)
		if err != nil {
			return err
		}
		switch res.ApplicationStatus {
		case "SUCCEEDED":
			fmt.Fprintf(out, "Program execution finished\nJob with JobID %s has finished.\nJob Runtime: %d ms\n", jobID, res.NetRuntime)
			return nil
		case "CANCELED":
			return fmt.Errorf("job %s was cancelled", jobID)
		default:
			return fmt.Errorf("job %s failed: %s", jobID, res.Failure())
		}
	})
}

// planTimeout bounds how long a binary may take to print its plan: a
// program that never calls Execute would otherwise hang strom info.
const planTimeout = 2 * time.Minute

func infoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "info BINARY [args]",
		Short: "Print a job binary's plan (its JobGraph) as JSON without running it (flink info)",
		Long: `Run BINARY with args in plan mode on this machine ($` + strom.PrintPlanEnv + `=1: its
Execute prints the JobGraph instead of running the job) and print the
JobGraph as JSON: vertices with their chained operators, parallelism and
UIDs, and the edges with their partitioning.`,
		Args: cobra.MinimumNArgs(1),
	}
	cmd.Flags().SetInterspersed(false)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		jg, err := planOf(cmd.Context(), args[0], args[1:])
		if err != nil {
			return err
		}
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(jg)
	}
	return cmd
}

// planOf runs binary in plan mode and reads the JobGraph it prints: the
// last JSON object that starts a line, so that what the program printed
// before Execute does not matter.
func planOf(ctx context.Context, binary string, args []string) (*jobgraph.JobGraph, error) {
	ctx, cancel := context.WithTimeout(ctx, planTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), strom.PrintPlanEnv+"=1")
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s did not print its plan within %v: does it call Execute?", binary, planTimeout)
		}
		return nil, fmt.Errorf("running %s in plan mode: %w", binary, err)
	}
	data := stdout.Bytes()
	if i := bytes.LastIndex(data, []byte("\n{")); i >= 0 {
		data = data[i+1:]
	}
	var jg jobgraph.JobGraph
	if err := json.Unmarshal(data, &jg); err != nil || len(jg.Vertices) == 0 {
		return nil, fmt.Errorf("%s printed no JobGraph in plan mode: is it a Strom job that calls Execute?", binary)
	}
	return &jg, nil
}
