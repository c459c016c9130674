package jobcode

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/scheduler"
)

// The settings survive the JobGraph's JSON: what a JobManager in another
// process runs a job with is what the program configured.
func TestSettingsRoundTripThroughJSON(t *testing.T) {
	for _, mode := range []checkpoint.Mode{checkpoint.ExactlyOnce, checkpoint.AtLeastOnce, checkpoint.Unaligned} {
		c := Config{
			Checkpoint: &Checkpointing{Config: checkpoint.Config{Interval: time.Second, Timeout: time.Minute, MinPause: 5 * time.Millisecond,
				MaxConcurrent: 2, TolerableFailures: 3, Mode: mode}, Storage: "file:///tmp/ck", AlignedTimeout: 7 * time.Millisecond, Retained: 2, Incremental: mode != checkpoint.AtLeastOnce},
			Restart: scheduler.RestartStrategy{Kind: scheduler.RestartFixedDelay, FixedDelay: &scheduler.FixedDelay{Attempts: 4, Delay: time.Second}},
		}
		s, err := Settings(c)
		require.NoError(t, err)
		data, err := json.Marshal(&jobgraph.JobGraph{JobName: "j", Settings: s})
		require.NoError(t, err)
		var jg jobgraph.JobGraph
		require.NoError(t, json.Unmarshal(data, &jg))
		got, err := FromSettings(jg.Settings)
		require.NoError(t, err)
		require.Equal(t, c.Checkpoint, got.Checkpoint)
		require.Equal(t, c.Restart, got.Restart)
	}
}

func TestFromSettingsRefusesNonsense(t *testing.T) {
	for name, s := range map[string]*jobgraph.Settings{
		"mode":       {Checkpoint: &jobgraph.CheckpointSettings{Interval: time.Second, Mode: "SOMETIMES", Storage: "mem://x"}},
		"negative":   {Checkpoint: &jobgraph.CheckpointSettings{Interval: -time.Second, Mode: "EXACTLY_ONCE", Storage: "mem://x"}},
		"no storage": {Checkpoint: &jobgraph.CheckpointSettings{Interval: time.Second, Mode: "EXACTLY_ONCE"}},
		"restart":    {Restart: json.RawMessage(`{"kind": 5}`)},
	} {
		_, err := FromSettings(s)
		require.Error(t, err, name)
	}
	c, err := FromSettings(nil)
	require.NoError(t, err)
	require.Nil(t, c.Checkpoint)
}
