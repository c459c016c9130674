package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

// Click is one page view of the demo's generated stream.
type Click struct {
	User int64
	Page string
	TS   int64 // event time, epoch ms
}

// PageWindow is the demo's per-page, per-window result.
type PageWindow struct {
	Page        string
	Start, End  int64
	Clicks      int64
	Users       int
	TotalClicks int64 // over every window so far (keyed state)
}

var demoPages = []string{"/home", "/search", "/cart", "/checkout", "/product", "/help", "/login", "/about"}

// clickAt is the demo's generator: a pure function of the index, so the
// stream is the same at every parallelism. Event time follows the index at
// the configured rate, with up to 1 s of disorder.
func clickAt(base int64, rate float64) func(i int64) Click {
	return func(i int64) Click {
		h := uint64(i)*0x9e3779b97f4a7c15 + 0x632be59bd9b4e019
		h ^= h >> 31
		h *= 0xbf58476d1ce4e5b9
		h ^= h >> 29
		page := demoPages[(h>>8)%uint64(len(demoPages))]
		if h%10 < 4 { // a hot page
			page = "/home"
		}
		jitter := int64(h>>20) % 1000
		return Click{
			User: int64(h>>32) % 5000,
			Page: page,
			TS:   base + int64(float64(i)*1000/rate) - jitter,
		}
	}
}

type clickAgg struct {
	N     int64
	Users map[int64]struct{}
}

// buildDemo wires the demo job: generated clicks → event time with bounded
// disorder → per-page tumbling windows (count and distinct users,
// incrementally) → a keyed function keeping each page's running total in
// ValueState → sink.
func buildDemo(env *strom.Environment, rate float64, window_ time.Duration, sink func(PageWindow) error) {
	base := time.Now().UnixMilli()
	clicks := datagen.FromGenerator(env, clickAt(base, rate), datagen.RatePerSecond(rate)).Name("clicks")
	timed := strom.AssignTimestamps(clicks,
		strom.BoundedOutOfOrderness[Click](time.Second).WithTimestamps(func(c Click) int64 { return c.TS })).
		Name("event time")
	byPage := strom.KeyBy(timed, func(c Click) string { return c.Page })
	windows := strom.WindowAggregateWith(strom.Window(byPage, window.Tumbling(window_)),
		state.Aggregator[Click, clickAgg, clickAgg]{
			Create: func() clickAgg { return clickAgg{Users: map[int64]struct{}{}} },
			Add: func(a clickAgg, c Click) clickAgg {
				a.N++
				a.Users[c.User] = struct{}{}
				return a
			},
			Result: func(a clickAgg) clickAgg { return a },
			Merge: func(a, b clickAgg) clickAgg {
				for u := range b.Users {
					a.Users[u] = struct{}{}
				}
				a.N += b.N
				return a
			},
		},
		func(ctx *strom.WindowContext[string, PageWindow], a clickAgg) error {
			w := ctx.Window()
			out := PageWindow{Page: ctx.Key(), Start: w.Start, End: w.End, Clicks: a.N, Users: len(a.Users)}
			ctx.Collect(out)
			return nil
		}).Name("page windows")
	totalDesc := state.ValueDescriptor[int64]{Name: "total-clicks"}
	totals := strom.KeyedProcessFunc(strom.KeyBy(windows, func(p PageWindow) string { return p.Page }),
		func(ctx *strom.KeyedContext[string, PageWindow], p PageWindow) error {
			total, err := state.GetValue(ctx, totalDesc)
			if err != nil {
				return err
			}
			t, _ := total.Value()
			t += p.Clicks
			total.Update(t)
			p.TotalClicks = t
			ctx.Collect(p)
			return nil
		}).Name("running totals")
	strom.SinkFunc(totals, sink).Name("print").Parallelism(1)
}

// demoOptions are the demo's flags.
type demoOptions struct {
	parallelism        int
	rate               float64
	window, report     time.Duration
	dataDir            string
	checkpointInterval time.Duration
	stopWithSavepoint  bool
	fromSavepoint      string
}

// defaultDemoDataDir is --data-dir's default: below the temporary directory,
// so the demo works on a fresh machine without touching the user's files,
// and is the same for every run, so a savepoint of one run is found by the
// next.
func defaultDemoDataDir() string { return filepath.Join(os.TempDir(), "strom-demo") }

func demoCmd() *cobra.Command {
	var (
		duration time.Duration
		o        demoOptions
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a stateful event-time job on an embedded cluster (2 TaskManagers × 2 slots)",
		Long: `demo starts the embedded cluster (2 TaskManagers with 2 slots each) and runs
a keyed, windowed aggregation with state over a generated stream of page clicks:
per page and tumbling window the number of clicks and distinct users, plus each
page's running total kept in keyed state. Results and per-operator throughput
are printed every few seconds. It stops on Ctrl-C or after --duration.

The job checkpoints into <data-dir>/checkpoints every --checkpoint-interval.
With --stop-with-savepoint it stops with a savepoint into <data-dir>/savepoints
instead of being cancelled, and prints its path; --from-savepoint PATH resumes
from it: the generator continues where it stopped and the running totals from
where they were.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.rate <= 0 {
				return fmt.Errorf("--rate must be positive, got %v", o.rate)
			}
			if o.window < time.Millisecond {
				return fmt.Errorf("--window must be at least 1ms, got %v", o.window)
			}
			if o.report <= 0 {
				return fmt.Errorf("--report must be positive, got %v", o.report)
			}
			if o.checkpointInterval < 0 {
				return fmt.Errorf("--checkpoint-interval must not be negative, got %v", o.checkpointInterval)
			}
			if o.dataDir == "" {
				return errors.New("--data-dir must not be empty")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			return runDemo(ctx, cmd.OutOrStdout(), o)
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&duration, "duration", 0, "stop after this long (0 = until Ctrl-C)")
	fl.Float64Var(&o.rate, "rate", 100_000, "generated clicks per second")
	fl.DurationVar(&o.window, "window", 5*time.Second, "tumbling window size")
	fl.DurationVar(&o.report, "report", 5*time.Second, "how often to print throughput")
	fl.IntVar(&o.parallelism, "parallelism", 4, "default parallelism (the cluster has 4 slots)")
	fl.StringVar(&o.dataDir, "data-dir", defaultDemoDataDir(), "directory of the demo's checkpoints (<data-dir>/checkpoints) and savepoints (<data-dir>/savepoints)")
	fl.DurationVar(&o.checkpointInterval, "checkpoint-interval", 5*time.Second, "take a checkpoint this often (0: no checkpoints)")
	fl.BoolVar(&o.stopWithSavepoint, "stop-with-savepoint", false, "when --duration ends or on Ctrl-C, stop with a savepoint into <data-dir>/savepoints (printed) instead of cancelling")
	fl.StringVar(&o.fromSavepoint, "from-savepoint", "", "resume from this savepoint (the path a --stop-with-savepoint run printed)")
	return cmd
}

// stopSavepointTimeout bounds how long the demo waits for its
// stop-with-savepoint to complete.
const stopSavepointTimeout = time.Minute

func runDemo(ctx context.Context, w io.Writer, o demoOptions) error {
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	cfg := strom.Config{
		Parallelism: o.parallelism, TaskManagers: 2, SlotsPerTaskManager: 2,
		CheckpointInterval: o.checkpointInterval,
		SavepointDir:       filepath.Join(dataDir, "savepoints"),
		FromSavepoint:      o.fromSavepoint,
	}
	if o.checkpointInterval > 0 {
		// A URL: the checkpoint storage takes no plain OS paths.
		cfg.CheckpointDir = (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dataDir, "checkpoints"))}).String()
	}
	env := strom.NewEnvironment(cfg)
	results := make(chan PageWindow, 1024)
	buildDemo(env, o.rate, o.window, func(p PageWindow) error {
		select {
		case results <- p:
		case <-ctx.Done():
		}
		return nil
	})
	jc, err := env.ExecuteAsync(context.Background(), "strom demo")
	if err != nil {
		return err
	}
	defer jc.Close()
	fmt.Fprintf(w, "strom demo: job %s on 2 TaskManagers × 2 slots, %.0f clicks/s, %v windows; Ctrl-C to stop\n", jc.JobID(), o.rate, o.window)
	if o.fromSavepoint != "" {
		fmt.Fprintf(w, "strom demo: resuming from savepoint %s\n", o.fromSavepoint)
	}
	tick := time.NewTicker(o.report)
	defer tick.Stop()
	last := map[string]int64{}
	lastT := time.Now()
	for {
		select {
		case p := <-results:
			printWindow(w, p)
		case now := <-tick.C:
			printThroughput(w, jc.Metrics(), last, now.Sub(lastT))
			lastT = now
		case <-jc.Done():
			_, err := jc.Wait(context.Background())
			return err
		case <-ctx.Done():
			if o.stopWithSavepoint {
				return stopDemo(w, jc, results)
			}
			jc.Cancel()
			res, err := jc.Wait(context.Background())
			if err != nil && !errors.Is(err, strom.ErrJobCanceled) {
				return err
			}
			fmt.Fprintf(w, "strom demo: stopped after %v\n", res.Duration.Round(time.Millisecond))
			return nil
		}
	}
}

// stopDemo stops the demo's job with a savepoint (not drained: the windows in
// progress stay in it), prints the path, and waits for the job to end.
func stopDemo(w io.Writer, jc *strom.JobClient, results <-chan PageWindow) error {
	ctx, cancel := context.WithTimeout(context.Background(), stopSavepointTimeout)
	defer cancel()
	path, err := jc.StopWithSavepoint(ctx, "", false)
	if err != nil {
		jc.Cancel()
		_, _ = jc.Wait(context.Background())
		return fmt.Errorf("stopping the demo with a savepoint: %w", err)
	}
	res, err := jc.Wait(context.Background())
	if err != nil {
		return err
	}
	// Print what reached the sink before the savepoint.
	for {
		select {
		case p := <-results:
			printWindow(w, p)
			continue
		default:
		}
		break
	}
	fmt.Fprintf(w, "strom demo: stopped after %v with savepoint %s\n", res.Duration.Round(time.Millisecond), path)
	fmt.Fprintf(w, "strom demo: resume with: strom demo --from-savepoint %s\n", path)
	return nil
}

func printWindow(w io.Writer, p PageWindow) {
	fmt.Fprintf(w, "window %s–%s  %-10s clicks %7d  users %5d  total %9d\n",
		time.UnixMilli(p.Start).Format("15:04:05"), time.UnixMilli(p.End).Format("15:04:05"), p.Page, p.Clicks, p.Users, p.TotalClicks)
}

func printThroughput(w io.Writer, ops []strom.OperatorResult, last map[string]int64, d time.Duration) {
	var b strings.Builder
	b.WriteString("throughput:")
	for _, o := range ops {
		n := o.RecordsOut
		if o.Name == "print" {
			n = o.RecordsIn
		}
		rate := float64(n-last[o.UID]) / d.Seconds()
		last[o.UID] = n
		fmt.Fprintf(&b, "  %s %.0f/s", o.Name, rate)
	}
	fmt.Fprintln(w, b.String())
}
