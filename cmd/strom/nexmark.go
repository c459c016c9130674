package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/nexmark"
)

// nexmarkSummary is the --json line.
type nexmarkSummary struct {
	Query              string  `json:"query"`
	Events             int64   `json:"events"`
	Seconds            float64 `json:"seconds"`
	EventsPerSecond    float64 `json:"events_per_second"`
	CPUSeconds         float64 `json:"cpu_seconds"`
	EventsPerCPUSecond float64 `json:"events_per_cpu_second"`
	Parallelism        int     `json:"parallelism"`
	Rows               int64   `json:"rows"`
	// With --checkpoint-interval:
	CheckpointsCompleted int `json:"checkpoints_completed"`
	Restarts             int `json:"restarts"`
	// LastCheckpointMS is the last completed checkpoint's duration, from
	// its trigger until its metadata was written, in (fractional) ms; 0
	// without checkpoints.
	LastCheckpointMS float64 `json:"last_checkpoint_ms"`
	// LastCheckpointSyncPauseMS is the longest a task stopped processing
	// for the last completed checkpoint (its synchronous part), in ms, and
	// LastCheckpointBytes the state it wrote; 0 without checkpoints.
	LastCheckpointSyncPauseMS float64 `json:"last_checkpoint_sync_pause_ms"`
	LastCheckpointBytes       int64   `json:"last_checkpoint_bytes"`
	// With --fail-every: the seed of the random choice of failing tasks, and
	// how many failures were injected.
	FailSeed         *uint64 `json:"fail_seed,omitempty"`
	FailuresInjected *int64  `json:"failures_injected,omitempty"`
	// With --baseline:
	BaselineSeconds         *float64 `json:"baseline_seconds,omitempty"`
	BaselineEventsPerSecond *float64 `json:"baseline_events_per_second,omitempty"`
	BaselineRows            *int64   `json:"baseline_rows,omitempty"`
	CostRatio               *float64 `json:"cost_ratio,omitempty"`
	// SavepointPath is the savepoint of --stop-with-savepoint-after ("" when
	// the job ended before, or without the flag); resume with
	// --from-savepoint.
	SavepointPath string `json:"savepoint_path"`
}

type nexmarkFlags struct {
	loopback       bool
	taskManagers   int
	query          string
	events         int64
	input          string
	output         string
	parallelism    int
	jsonOut        bool
	baseline       bool
	seed           int64
	rate           float64
	outOfOrderness time.Duration
	cpuProfile     string
	wmInterval     time.Duration
	tps            float64
	ckInterval     time.Duration
	ckDir          string
	ckMode         string
	ckFull         bool
	failEvery      time.Duration
	failSeed       uint64
	stopAfter      time.Duration
	savepointDir   string
	fromSavepoint  string
	cluster        string
}

func nexmarkCmd() *cobra.Command {
	var f nexmarkFlags
	cmd := &cobra.Command{
		Use:   "nexmark --query qN [--events N | --input FILE]",
		Short: "Run a Nexmark benchmark query on an embedded cluster",
		Long: `nexmark runs one Nexmark query (` + strings.Join(nexmark.Queries, ", ") + `) on an embedded
cluster, over events generated in-process (--events) or read from a JSON-lines file
(--input, the format of nexmark.WriteEvents), and reports the throughput: events per
second of wall-clock time and per CPU-second (user + system time of the whole process,
generator included).

Rows go to --output as JSON lines, or else to a blackhole sink that consumes every row.
With --baseline the same query also runs as a hand-written single-goroutine program over
the same generator, without the framework (the COST baseline), and the ratio of the
engine's events/s to the baseline's is reported.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("events") && cmd.Flags().Changed("input") {
				return errors.New("give either --events or --input, not both")
			}
			return runNexmark(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.query, "query", "", "the query to run: "+strings.Join(nexmark.Queries, ", "))
	fl.Int64Var(&f.events, "events", 10_000_000, "number of events to generate")
	fl.StringVar(&f.input, "input", "", "read the events from this JSON-lines file (or directory) instead of generating them")
	fl.StringVar(&f.output, "output", "", "write the result rows to this file as JSON lines (default: a blackhole sink); with --checkpoint-interval a directory written exactly once: its committed files (names not starting with '.') hold the rows")
	fl.IntVar(&f.parallelism, "parallelism", 1, "parallelism of the job's operators")
	fl.IntVar(&f.taskManagers, "taskmanagers", 0, "TaskManagers of the embedded cluster, each with parallelism/taskmanagers slots (0: one with every slot)")
	fl.BoolVar(&f.loopback, "loopback-network", false, "run the embedded cluster as separate processes would: messages between the roles over the network transport and channels between TaskManagers over TCP, on loopback (measures the network's cost per record)")
	fl.BoolVar(&f.jsonOut, "json", false, "print one JSON summary line instead of text")
	fl.BoolVar(&f.baseline, "baseline", false, "also run the single-goroutine baseline and report the COST ratio")
	fl.Int64Var(&f.seed, "seed", 1, "generator seed")
	fl.Float64Var(&f.rate, "rate", nexmark.DefaultEventsPerSecond, "event-time rate of the generated events (events per second of event time)")
	fl.DurationVar(&f.outOfOrderness, "out-of-orderness", 0, "largest event-time disorder of the events (generated, or expected in --input)")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the engine run to this file")
	fl.DurationVar(&f.wmInterval, "watermark-interval", 0, "how often sources emit watermarks (default: the environment's, 200ms)")
	fl.Float64Var(&f.tps, "tps", 0, "sources emit at most this many events per second of wall-clock time in all (0: no limit), so checkpoints happen mid-run")
	fl.DurationVar(&f.ckInterval, "checkpoint-interval", 0, "take a checkpoint this often (0: no checkpoints)")
	fl.StringVar(&f.ckDir, "checkpoint-dir", "", "checkpoint storage URL (file:///dir, s3://bucket/prefix?endpoint=..., mem://name; default: "+strom.DefaultCheckpointDir()+")")
	fl.StringVar(&f.ckMode, "checkpoint-mode", "aligned", "aligned (exactly-once), unaligned (exactly-once, barriers overtake in-flight records) or at-least-once")
	fl.BoolVar(&f.ckFull, "full-checkpoints", false, "write the whole keyed state at every checkpoint instead of what changed since the last one")
	fl.DurationVar(&f.failEvery, "fail-every", 0, "fail a random running subtask this often, by a panic inside the task, to exercise recovery (needs --checkpoint-interval; restarts after a fixed "+nexmark.FailRestartDelay.String()+")")
	fl.Uint64Var(&f.failSeed, "fail-seed", 0, "seed of the random choice of the subtask --fail-every fails (0: drawn at random, and printed)")
	fl.DurationVar(&f.stopAfter, "stop-with-savepoint-after", 0, "after this long (wall-clock), stop the job with a savepoint into --savepoint-dir, without draining, and report its path (0: run to the end)")
	fl.StringVar(&f.savepointDir, "savepoint-dir", "", "where --stop-with-savepoint-after puts the savepoint: an OS path or URL (file:///dir, s3://bucket/prefix?endpoint=..., mem://name)")
	fl.StringVar(&f.fromSavepoint, "from-savepoint", "", "resume from this savepoint (the savepoint_path of a stopped run), possibly at another --parallelism; with --output DIR and checkpoints, write into the stopped run's DIR")
	fl.StringVar(&f.cluster, "cluster", "", "run the query on the cluster at this REST URL (this binary submits itself, and the cluster's TaskManagers run it as the job binary) instead of an embedded cluster; the CPU time reported is then this client's only")
	_ = cmd.MarkFlagRequired("query")
	return cmd
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func runNexmark(cmd *cobra.Command, f nexmarkFlags) error {
	if err := nexmark.CheckQuery(f.query); err != nil {
		return err
	}
	if f.taskManagers < 0 {
		return fmt.Errorf("--taskmanagers must not be negative, got %d", f.taskManagers)
	}
	if f.parallelism < 1 {
		return fmt.Errorf("--parallelism must be at least 1, got %d", f.parallelism)
	}
	if f.input == "" && f.events < 0 {
		return fmt.Errorf("--events must not be negative, got %d", f.events)
	}
	if !(f.rate > 0) {
		return fmt.Errorf("--rate must be positive, got %v", f.rate)
	}
	if f.outOfOrderness < 0 {
		return fmt.Errorf("--out-of-orderness must not be negative, got %v", f.outOfOrderness)
	}
	if f.baseline && f.input != "" {
		return errors.New("--baseline runs over the generator: use it with --events, not --input")
	}
	if f.input != "" {
		if _, err := os.Stat(f.input); err != nil {
			return fmt.Errorf("--input: %w", err)
		}
	}
	if f.cluster != "" {
		// These act inside the process that runs the tasks, which on a
		// cluster is not this one.
		for _, name := range []string{"fail-every", "cpuprofile", "taskmanagers", "loopback-network"} {
			if cmd.Flags().Changed(name) {
				return fmt.Errorf("--%s works on an embedded cluster only, not with --cluster", name)
			}
		}
	}
	gcfg := nexmark.GeneratorConfig{Seed: f.seed, EventsPerSecond: f.rate, OutOfOrderness: f.outOfOrderness}
	cfg := nexmark.RunConfig{
		Query:          f.query,
		Generator:      gcfg,
		Input:          f.input,
		OutOfOrderness: f.outOfOrderness,
		Parallelism:    f.parallelism,
		Output:         &nexmark.Output{Path: f.output},
	}
	if f.input == "" {
		cfg.Events = f.events
	}
	if f.tps < 0 {
		return fmt.Errorf("--tps must not be negative, got %v", f.tps)
	}
	if f.tps > 0 && f.input != "" {
		return errors.New("--tps limits generated events: use it with --events, not --input")
	}
	cfg.TPS = f.tps
	var mode strom.CheckpointMode
	switch f.ckMode {
	case "aligned":
		mode = strom.CheckpointExactlyOnce
	case "at-least-once":
		mode = strom.CheckpointAtLeastOnce
	case "unaligned":
		mode = strom.CheckpointUnaligned
	default:
		return fmt.Errorf("--checkpoint-mode must be aligned, unaligned or at-least-once, got %q", f.ckMode)
	}
	if f.ckInterval < 0 {
		return fmt.Errorf("--checkpoint-interval must not be negative, got %v", f.ckInterval)
	}
	if f.ckInterval > 0 && f.output != "" {
		// With checkpoints --output is a directory written by the exactly-once
		// file sink: its committed files hold exactly the rows of a failure-free
		// run, across restarts.
		cfg.Output.ExactlyOnce = true
	}
	if f.failEvery < 0 {
		return fmt.Errorf("--fail-every must not be negative, got %v", f.failEvery)
	}
	if f.failEvery > 0 {
		if f.ckInterval <= 0 {
			return errors.New("--fail-every needs --checkpoint-interval: without checkpoints a failed job cannot recover, it would start over")
		}
		if f.failSeed == 0 {
			f.failSeed = rand.Uint64N(math.MaxUint32) + 1
		}
		logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
		logger.Info("chaos: failing a random running subtask periodically", "every", f.failEvery, "seed", f.failSeed)
		cfg.FailEvery, cfg.FailSeed, cfg.Logger = f.failEvery, f.failSeed, logger
	}
	if f.stopAfter < 0 {
		return fmt.Errorf("--stop-with-savepoint-after must not be negative, got %v", f.stopAfter)
	}
	if f.stopAfter > 0 && f.savepointDir == "" {
		return errors.New("--stop-with-savepoint-after needs --savepoint-dir: where to put the savepoint")
	}
	cfg.StopWithSavepointAfter, cfg.SavepointDir, cfg.FromSavepoint = f.stopAfter, f.savepointDir, f.fromSavepoint
	cfg.Configure = func(c *strom.Config) {
		if f.wmInterval > 0 {
			c.AutoWatermarkInterval = f.wmInterval
		}
		c.CheckpointInterval = f.ckInterval
		c.CheckpointDir = f.ckDir
		c.CheckpointMode = mode
		c.FullCheckpoints = f.ckFull
		c.LoopbackNetwork = f.loopback
		c.Cluster = f.cluster
		if f.taskManagers > 0 {
			c.TaskManagers = f.taskManagers
			c.SlotsPerTaskManager = (f.parallelism + f.taskManagers - 1) / f.taskManagers
		}
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	cpu0 := cpuTime()
	res, err := nexmark.Run(ctx, cfg)
	cpu := cpuTime() - cpu0
	if f.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return fmt.Errorf("nexmark %s: %w", f.query, err)
	}
	sum := nexmarkSummary{
		Query:              f.query,
		Events:             res.Events,
		Seconds:            res.Elapsed.Seconds(),
		EventsPerSecond:    rate(res.Events, res.Elapsed),
		CPUSeconds:         cpu.Seconds(),
		EventsPerCPUSecond: rate(res.Events, cpu),
		Parallelism:        f.parallelism,
		Rows:               res.Rows,
		SavepointPath:      res.SavepointPath,
	}
	if res.Job != nil {
		sum.CheckpointsCompleted, sum.Restarts = res.Job.CheckpointsCompleted, res.Job.Restarts
		sum.LastCheckpointMS = float64(res.Job.LastCheckpointDuration) / float64(time.Millisecond)
		sum.LastCheckpointSyncPauseMS = float64(res.Job.LastCheckpointSyncPause) / float64(time.Millisecond)
		sum.LastCheckpointBytes = res.Job.LastCheckpointSize
	}
	if f.failEvery > 0 {
		seed, n := f.failSeed, res.Injected
		sum.FailSeed, sum.FailuresInjected = &seed, &n
	}
	if f.baseline {
		g := nexmark.NewGenerator(gcfg)
		start := time.Now()
		rows, err := nexmark.RunBaseline(f.query, g, f.events, nil)
		el := time.Since(start)
		if err != nil {
			return fmt.Errorf("baseline %s: %w", f.query, err)
		}
		secs, eps := el.Seconds(), rate(f.events, el)
		sum.BaselineSeconds, sum.BaselineEventsPerSecond, sum.BaselineRows = &secs, &eps, &rows
		ratio := 0.0
		if eps > 0 {
			ratio = sum.EventsPerSecond / eps
		}
		sum.CostRatio = &ratio
	}
	return printNexmark(cmd.OutOrStdout(), sum, f.jsonOut)
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func printNexmark(w io.Writer, s nexmarkSummary, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	fmt.Fprintf(w, "nexmark %s, parallelism %d\n", s.Query, s.Parallelism)
	fmt.Fprintf(w, "  events               %d\n", s.Events)
	fmt.Fprintf(w, "  rows produced        %d\n", s.Rows)
	fmt.Fprintf(w, "  seconds              %.3f\n", s.Seconds)
	fmt.Fprintf(w, "  events/s             %.0f\n", s.EventsPerSecond)
	fmt.Fprintf(w, "  CPU seconds          %.3f (user + system)\n", s.CPUSeconds)
	fmt.Fprintf(w, "  events per CPU-s     %.0f\n", s.EventsPerCPUSecond)
	if s.CheckpointsCompleted > 0 || s.Restarts > 0 {
		fmt.Fprintf(w, "  checkpoints          %d completed\n", s.CheckpointsCompleted)
		fmt.Fprintf(w, "  last checkpoint      %.1f ms (trigger to metadata written), %d bytes, sync pause %.1f ms\n",
			s.LastCheckpointMS, s.LastCheckpointBytes, s.LastCheckpointSyncPauseMS)
		fmt.Fprintf(w, "  restarts             %d\n", s.Restarts)
	}
	if s.SavepointPath != "" {
		fmt.Fprintf(w, "  stopped with savepoint %s\n", s.SavepointPath)
	}
	if s.FailuresInjected != nil {
		fmt.Fprintf(w, "  failures injected    %d (--fail-seed %d)\n", *s.FailuresInjected, *s.FailSeed)
	}
	if s.BaselineEventsPerSecond != nil {
		fmt.Fprintf(w, "baseline (one goroutine, no framework)\n")
		fmt.Fprintf(w, "  rows produced        %d\n", *s.BaselineRows)
		fmt.Fprintf(w, "  seconds              %.3f\n", *s.BaselineSeconds)
		fmt.Fprintf(w, "  events/s             %.0f\n", *s.BaselineEventsPerSecond)
		fmt.Fprintf(w, "COST ratio (engine events/s ÷ baseline events/s): %.3f\n", *s.CostRatio)
	}
	return nil
}
