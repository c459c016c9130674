package strom

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/scheduler"
)

// CheckpointMode is how tasks treat checkpoint barriers (Config.CheckpointMode).
type CheckpointMode uint8

const (
	// CheckpointExactlyOnce aligns barriers: a task with several inputs
	// holds back the inputs whose barrier arrived until all have, so a
	// restored job's state counts every record exactly once. The default.
	CheckpointExactlyOnce CheckpointMode = iota
	// CheckpointAtLeastOnce does not hold inputs back: cheaper under
	// skew, but after a restore some records are counted twice.
	CheckpointAtLeastOnce
	// CheckpointUnaligned lets barriers overtake the records in flight
	// (Flink's unaligned checkpoints): no input is held back, so
	// checkpoints complete under backpressure; the records overtaken are
	// stored with the checkpoint and replayed on restore, which therefore
	// must keep the parallelism. Exactly once, like CheckpointExactlyOnce.
	// Savepoints are always aligned.
	CheckpointUnaligned
)

func (m CheckpointMode) String() string {
	switch m {
	case CheckpointExactlyOnce:
		return "exactly-once"
	case CheckpointAtLeastOnce:
		return "at-least-once"
	case CheckpointUnaligned:
		return "unaligned"
	}
	return fmt.Sprintf("CheckpointMode(%d)", uint8(m))
}

// Checkpoint defaults (EnsureDefaults).
const (
	// DefaultCheckpointTimeout is Flink's: a checkpoint still waiting for
	// its tasks after this long is aborted.
	DefaultCheckpointTimeout = checkpoint.DefaultTimeout
	// DefaultRetainedCheckpoints is how many completed checkpoints are kept.
	DefaultRetainedCheckpoints = 1
)

// DefaultCheckpointDir is where checkpoints go when Config.CheckpointDir
// is empty: file://<os.TempDir()>/strom-checkpoints, one directory per job
// id below it. Temporary directories do not survive a reboot; set
// CheckpointDir to keep checkpoints.
func DefaultCheckpointDir() string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(os.TempDir(), "strom-checkpoints"))}).String()
}

// RestartStrategy says whether and when a failed job restarts
// (Config.RestartStrategy). The zero value is the default: no restart
// without checkpointing (a restart would replay the sources onto empty
// state), exponential delay with it (Flink's defaults).
type RestartStrategy struct {
	s   scheduler.RestartStrategy
	set bool
}

// NoRestart fails the job at its first task failure.
func NoRestart() RestartStrategy { return RestartStrategy{s: scheduler.NoRestart(), set: true} }

// FixedDelayRestart restarts the job up to attempts times over its life,
// delay after the failed attempt ended.
func FixedDelayRestart(attempts int, delay time.Duration) RestartStrategy {
	return RestartStrategy{s: scheduler.FixedDelayRestart(attempts, delay), set: true}
}

// ExponentialDelayRestart restarts with a backoff from 1s growing by 1.5
// up to 1 min, with jitter, reset after an hour without failure, without
// limit (Flink's defaults).
func ExponentialDelayRestart() RestartStrategy {
	return RestartStrategy{s: scheduler.ExponentialDelayRestart(), set: true}
}

// FailureRateRestart restarts the job delay after a failure as long as at
// most maxFailures failures fell within interval.
func FailureRateRestart(maxFailures int, interval, delay time.Duration) RestartStrategy {
	return RestartStrategy{s: scheduler.FailureRateRestart(maxFailures, interval, delay), set: true}
}

// String is the strategy's name, with Flink's names ("default" for the
// zero value).
func (r RestartStrategy) String() string {
	if !r.set {
		return "default"
	}
	if r.s.Kind == "" {
		return string(scheduler.RestartNone)
	}
	return string(r.s.Kind)
}

// strategy is the scheduler's strategy for the job.
func (r RestartStrategy) strategy(checkpointing bool) scheduler.RestartStrategy {
	if !r.set {
		return scheduler.DefaultRestartStrategy(checkpointing)
	}
	return r.s
}

// validateCheckpointing is Config.validate's part for checkpoints and
// restarts.
func (c Config) validateCheckpointing() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"CheckpointInterval", c.CheckpointInterval},
		{"CheckpointTimeout", c.CheckpointTimeout},
		{"MinPauseBetweenCheckpoints", c.MinPauseBetweenCheckpoints},
	} {
		if d.v < 0 {
			return fmt.Errorf("config: %s %v must not be negative (0 means the default)", d.name, d.v)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"MaxConcurrentCheckpoints", c.MaxConcurrentCheckpoints},
		{"TolerableCheckpointFailures", c.TolerableCheckpointFailures},
		{"RetainedCheckpoints", c.RetainedCheckpoints},
	} {
		if f.v < 0 {
			return fmt.Errorf("config: %s %d must not be negative (0 means the default)", f.name, f.v)
		}
	}
	if c.CheckpointMode != CheckpointExactlyOnce && c.CheckpointMode != CheckpointAtLeastOnce && c.CheckpointMode != CheckpointUnaligned {
		return fmt.Errorf("config: unknown CheckpointMode %v", c.CheckpointMode)
	}
	if c.AlignedCheckpointTimeout < 0 {
		return fmt.Errorf("config: AlignedCheckpointTimeout %v must not be negative (0 means never)", c.AlignedCheckpointTimeout)
	}
	if c.CheckpointDir != "" {
		u, err := url.Parse(c.CheckpointDir)
		if err != nil {
			return fmt.Errorf("config: CheckpointDir %q: %w", c.CheckpointDir, err)
		}
		if u.Scheme == "" {
			return fmt.Errorf("config: CheckpointDir %q is not a URL: write file:///path for a directory (or mem://name within one process)", c.CheckpointDir)
		}
	}
	if err := c.RestartStrategy.s.Validate(); err != nil {
		return fmt.Errorf("config: RestartStrategy: %w", err)
	}
	return nil
}

// ensureCheckpointDefaults is EnsureDefaults' part for checkpoints.
func (c *Config) ensureCheckpointDefaults() {
	if c.CheckpointDir == "" {
		c.CheckpointDir = DefaultCheckpointDir()
	}
	if c.CheckpointTimeout <= 0 {
		c.CheckpointTimeout = DefaultCheckpointTimeout
	}
	if c.MaxConcurrentCheckpoints <= 0 {
		c.MaxConcurrentCheckpoints = 1
	}
	if c.RetainedCheckpoints <= 0 {
		c.RetainedCheckpoints = DefaultRetainedCheckpoints
	}
}

// checkpointing is the job's checkpoint settings (nil: checkpointing off);
// c has its defaults.
func (c Config) checkpointing() *jobcode.Checkpointing {
	if c.CheckpointInterval <= 0 {
		return nil
	}
	mode := checkpoint.ExactlyOnce
	switch c.CheckpointMode {
	case CheckpointAtLeastOnce:
		mode = checkpoint.AtLeastOnce
	case CheckpointUnaligned:
		mode = checkpoint.Unaligned
	}
	return &jobcode.Checkpointing{
		Config: checkpoint.Config{
			Interval:          c.CheckpointInterval,
			Timeout:           c.CheckpointTimeout,
			MinPause:          c.MinPauseBetweenCheckpoints,
			MaxConcurrent:     c.MaxConcurrentCheckpoints,
			TolerableFailures: c.TolerableCheckpointFailures,
			Mode:              mode,
		},
		Storage:        c.CheckpointDir,
		Retained:       c.RetainedCheckpoints,
		Incremental:    !c.FullCheckpoints,
		AlignedTimeout: c.AlignedCheckpointTimeout,
	}
}
