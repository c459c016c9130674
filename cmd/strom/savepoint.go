package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/strom-dev/strom/internal/savepoint"
)

func savepointCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "savepoint",
		Short: "Work with savepoints and checkpoints",
	}
	cmd.AddCommand(savepointInspectCmd())
	return cmd
}

func savepointInspectCmd() *cobra.Command {
	var (
		asJSON      bool
		uid, state  string
		inspectLong = `Inspect a completed checkpoint or savepoint without the job that wrote it.

PATH is the directory (or its _metadata file) as an OS path or a URL
(file:///…, s3://…). By default a table of its operators and their states
(types, key counts, sizes) is printed; --json prints the same as JSON.
With --operator UID --state NAME the entries of that state are printed as
JSON lines: for keyed state one line per key (per list element, per map
entry) {"key_group","key","namespace","map_key","value","expiry"}, for an
operator-state list one line per element {"subtask","element"} (base64).`
	)
	cmd := &cobra.Command{
		Use:   "inspect PATH",
		Short: "Print the operators and states of a checkpoint or savepoint, or dump one state",
		Long:  inspectLong,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (uid == "") != (state == "") {
				return errors.New("--operator and --state go together")
			}
			if asJSON && state != "" {
				return errors.New("--json applies to the summary; a --state dump is JSON lines already")
			}
			ctx := cmd.Context()
			s, err := savepoint.Open(ctx, args[0])
			if err != nil {
				return err
			}
			defer s.Close()
			out := cmd.OutOrStdout()
			if state != "" {
				return s.Dump(ctx, uid, state, out)
			}
			sum, err := s.Summarize(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(sum)
			}
			return printSummary(out, sum)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmd.Flags().StringVar(&uid, "operator", "", "UID of the operator whose state to dump (with --state)")
	cmd.Flags().StringVar(&state, "state", "", "name of the state to dump as JSON lines (with --operator)")
	return cmd
}

// printSummary writes the summary as two tables: operators, then states.
func printSummary(w io.Writer, sum *savepoint.Summary) error {
	fmt.Fprintf(w, "%s %d of job %s\n%s\ntriggered %s, completed %s\n\n", sum.Kind, sum.ID, sum.JobID, sum.Location,
		sum.Triggered.Format("2006-01-02 15:04:05.000Z07:00"), sum.Completed.Format("2006-01-02 15:04:05.000Z07:00"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OPERATOR\tNAME\tPARALLELISM\tMAX PARALLELISM\tFINISHED")
	for _, op := range sum.Operators {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", op.UID, op.Name, op.Parallelism, op.MaxParallelism, op.FinishedSubtasks)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OPERATOR\tSTATE\tKIND\tTYPE\tKEYS/ELEMENTS\tSIZE")
	for _, op := range sum.Operators {
		for _, ks := range op.KeyedStates {
			keys := "?"
			if ks.Keys != nil {
				keys = strconv.FormatInt(*ks.Keys, 10)
			}
			fmt.Fprintf(tw, "%s\t%s\tkeyed\t%s\t%s\t%s\n", op.UID, ks.Name, ks.Type, keys, byteSize(ks.Bytes))
		}
		for _, l := range op.OperatorStates {
			fmt.Fprintf(tw, "%s\t%s\toperator\t%s\t%d\t%s\n", op.UID, l.Name, l.Mode, l.Elements, byteSize(l.Bytes))
		}
	}
	return tw.Flush()
}

// byteSize formats n bytes for people: 950 B, 12.3 KiB, 4.0 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}
