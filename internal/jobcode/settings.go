package jobcode

import (
	"encoding/json"
	"fmt"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/scheduler"
)

// Mode names in jobgraph.CheckpointSettings.
var modeNames = map[checkpoint.Mode]string{
	checkpoint.ExactlyOnce: "EXACTLY_ONCE",
	checkpoint.AtLeastOnce: "AT_LEAST_ONCE",
	checkpoint.Unaligned:   "UNALIGNED",
}

// Settings is what of c a JobManager in another process needs: the
// checkpoint settings and the restart strategy (jobgraph.Settings).
func Settings(c Config) (*jobgraph.Settings, error) {
	s := &jobgraph.Settings{}
	if ck := c.Checkpoint; ck != nil {
		s.Checkpoint = &jobgraph.CheckpointSettings{
			Interval: ck.Interval, Timeout: ck.Timeout, MinPause: ck.MinPause,
			MaxConcurrent: ck.MaxConcurrent, TolerableFailures: ck.TolerableFailures,
			Mode: modeNames[ck.Mode], Storage: ck.Storage, AlignedTimeout: ck.AlignedTimeout, Retained: ck.Retained,
			Incremental: ck.Incremental,
		}
	}
	r, err := json.Marshal(c.Restart)
	if err != nil {
		return nil, fmt.Errorf("encoding the restart strategy: %w", err)
	}
	s.Restart = r
	return s, nil
}

// FromSettings is the JobManager's side of Settings: the Checkpoint and
// Restart of a Config (nil s: no checkpoints, no restarts).
func FromSettings(s *jobgraph.Settings) (Config, error) {
	var c Config
	if s == nil {
		return c, nil
	}
	if ck := s.Checkpoint; ck != nil {
		mode, ok := checkpoint.Mode(0), false
		for m, name := range modeNames {
			if name == ck.Mode {
				mode, ok = m, true
			}
		}
		if !ok {
			return c, fmt.Errorf("checkpoint mode %q: want EXACTLY_ONCE, AT_LEAST_ONCE or UNALIGNED", ck.Mode)
		}
		c.Checkpoint = &Checkpointing{
			Config: checkpoint.Config{Interval: ck.Interval, Timeout: ck.Timeout, MinPause: ck.MinPause,
				MaxConcurrent: ck.MaxConcurrent, TolerableFailures: ck.TolerableFailures, Mode: mode},
			Storage: ck.Storage, AlignedTimeout: ck.AlignedTimeout, Retained: ck.Retained,
			Incremental: ck.Incremental,
		}
		if err := c.Checkpoint.Config.Validate(); err != nil {
			return c, err
		}
		if ck.Storage == "" {
			return c, fmt.Errorf("checkpointing every %v needs a checkpoint storage URL", ck.Interval)
		}
	}
	if len(s.Restart) > 0 {
		var r scheduler.RestartStrategy
		if err := json.Unmarshal(s.Restart, &r); err != nil {
			return c, fmt.Errorf("restart strategy: %w", err)
		}
		c.Restart = r
	}
	return c, nil
}
