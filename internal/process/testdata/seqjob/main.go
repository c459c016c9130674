// Command seqjob is the job binary of the process tests: record i is
// (key i mod keys, sequence i div keys + 1), generated at a limited rate;
// a keyed running count per key; the exactly-once JSON-lines file sink
// writes (key, seq, count). Exactly once end to end means: for every key,
// the committed output holds seq 1..n/keys once each, with count == seq.
//
// It submits itself to --cluster (a REST URL) like any job binary; with
// --panic-after N a subtask of the map panics once it has seen N records,
// in every attempt (a job with a bug: its worker process dies).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/connector/file"
	"github.com/strom-dev/strom/state"
)

type rec struct {
	Key int64 `json:"key"`
	Seq int64 `json:"seq"`
}

type out struct {
	Key   int64 `json:"key"`
	Seq   int64 `json:"seq"`
	Count int64 `json:"count"`
}

type counter struct{ n state.ValueState[int64] }

func (c *counter) Open(ctx *strom.KeyedContext[int64, out]) error {
	var err error
	c.n, err = state.GetValue(ctx, state.ValueDescriptor[int64]{Name: "count"})
	return err
}

func (c *counter) ProcessElement(ctx *strom.KeyedContext[int64, out], r rec) error {
	n, _ := c.n.Value()
	n++
	c.n.Update(n)
	ctx.Collect(out{Key: r.Key, Seq: r.Seq, Count: n})
	return nil
}

func main() {
	cluster := flag.String("cluster", "", "REST URL of the cluster to submit to")
	n := flag.Int64("n", 20000, "records in all")
	keys := flag.Int64("keys", 8, "keys")
	rate := flag.Float64("rate", 4000, "records per second in all (0: unlimited)")
	p := flag.Int("p", 2, "parallelism")
	outDir := flag.String("out", "", "directory of the exactly-once sink (required)")
	ckDir := flag.String("checkpoints", "", "checkpoint directory (required)")
	interval := flag.Duration("interval", 200*time.Millisecond, "checkpoint interval")
	panicAfter := flag.Int64("panic-after", 0, "panic in the map after this many records (0: never)")
	crashAfter := flag.Int64("crash-after", 0, "crash the whole process (a panic on a goroutine of its own, which nothing can recover) after this many records in the map (0: never)")
	restarts := flag.Int("restarts", 1000, "restart attempts (0: none)")
	flag.Parse()
	if *outDir == "" || *ckDir == "" {
		fmt.Fprintln(os.Stderr, "seqjob: --out and --checkpoints are required")
		os.Exit(2)
	}
	cfg := strom.Config{
		Cluster: *cluster, Parallelism: *p,
		CheckpointInterval: *interval, CheckpointDir: "file://" + *ckDir,
		RestartStrategy: strom.NoRestart(),
	}
	if *restarts > 0 {
		cfg.RestartStrategy = strom.FixedDelayRestart(*restarts, 100*time.Millisecond)
	}
	env := strom.NewEnvironment(cfg)
	opts := []datagen.GeneratorOption{datagen.Count(*n)}
	if *rate > 0 {
		opts = append(opts, datagen.RatePerSecond(*rate))
	}
	k := *keys
	src := datagen.FromGenerator(env, func(i int64) rec { return rec{Key: i % k, Seq: i/k + 1} }, opts...)
	seen := int64(0)
	checked := strom.Map(src, func(r rec) rec {
		seen++
		if *panicAfter > 0 && seen > *panicAfter {
			panic(fmt.Sprintf("seqjob: a bug, on purpose, after %d records", *panicAfter))
		}
		if *crashAfter > 0 && seen > *crashAfter {
			go func() { panic(fmt.Sprintf("seqjob: a crash, on purpose, after %d records", *crashAfter)) }()
			time.Sleep(time.Second)
		}
		return r
	}).Name("Check").UID("check")
	counted := strom.KeyedProcess(strom.KeyBy(checked, func(r rec) int64 { return r.Key }),
		func() strom.KeyedProcessFunction[int64, rec, out] { return &counter{} }).Name("Count").UID("count")
	file.WriteJSONLinesExactlyOnce(counted, *outDir)
	res, err := env.Execute(context.Background(), "seqjob")
	if err != nil {
		fmt.Fprintln(os.Stderr, "seqjob:", err)
		os.Exit(1)
	}
	fmt.Printf("seqjob: job %s finished in %v (restarts %d, checkpoints %d)\n", res.JobID, res.Duration, res.Restarts, res.CheckpointsCompleted)
}
