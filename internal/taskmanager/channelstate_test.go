package taskmanager

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/blob"
	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/runtime"
)

// channelJob is a job of two vertices, source and sink, at the given
// parallelisms, checkpointing into url.
func channelJob(url string, srcPar, sinkPar int) *jobcode.Job {
	return &jobcode.Job{
		ID: "job",
		JobGraph: &jobgraph.JobGraph{Vertices: []*jobgraph.JobVertex{
			{ID: 0, Name: "src", Parallelism: srcPar, MaxParallelism: 128, Operators: []jobgraph.OperatorInfo{{UID: "src"}}},
			{ID: 1, Name: "sink", Parallelism: sinkPar, MaxParallelism: 128, Operators: []jobgraph.OperatorInfo{{UID: "sink"}, {UID: "tail"}}},
		}},
		Config: jobcode.Config{Checkpoint: &jobcode.Checkpointing{Storage: url}},
	}
}

// The channel state of an unaligned checkpoint is written as one file per
// subtask under the chain head's UID, and read back for that subtask only;
// restoring it at another parallelism fails with an error that says why.
func TestChannelStateUploadRestoreAndRescaleRefused(t *testing.T) {
	ctx := context.Background()
	const url = "mem://tm-channel-state"
	tm := &TaskManager{stores: map[string]blob.Store{}}
	defer tm.closeStores()
	job := channelJob(url, 1, 2)

	in, err := runtime.EncodeChannelRecords(0, 1, []network.Rec[int]{{V: 4, Ts: 4}})
	require.NoError(t, err)
	ch := &runtime.ChannelState{Input: []runtime.ChannelRecords{in}}
	snap := runtime.TaskSnapshot{
		CheckpointID: 3,
		Options:      runtime.CheckpointOptions{ID: 3, Mode: network.Unaligned},
		Task:         runtime.TaskInfo{Subtask: 1, Parallelism: 2, MaxParallelism: 128},
		Operators:    []runtime.OperatorSnapshot{{UID: "sink"}, {UID: "tail"}},
		Channel:      ch,
	}
	states, err := tm.upload(ctx, job, 3, snap, nil)
	require.NoError(t, err)
	require.Len(t, states, 2)
	require.Len(t, states[0].State.Channel, 1, "the head carries the task's channel state")
	require.Contains(t, states[0].State.Channel[0].Path, "sink/1-channel")
	require.Empty(t, states[1].State.Channel)

	handles := &rpc.RestoreHandles{CheckpointID: 3, Operators: []checkpoint.OperatorState{
		{UID: "src", Parallelism: 1, MaxParallelism: 128, Subtasks: []checkpoint.SubtaskState{{Subtask: 0}}},
		{UID: "sink", Parallelism: 2, MaxParallelism: 128, Subtasks: []checkpoint.SubtaskState{{Subtask: 0}, states[0].State}},
		{UID: "tail", Parallelism: 2, MaxParallelism: 128, Subtasks: []checkpoint.SubtaskState{{Subtask: 0}, states[1].State}},
	}}
	sink := job.JobGraph.Vertices[1]
	_, got, err := tm.readRestore(ctx, job, sink, 1, handles)
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Len(t, got.Input, 1)
	recs, err := runtime.DecodeChannelRecords[int](got.Input[0])
	require.NoError(t, err)
	require.Equal(t, []network.Rec[int]{{V: 4, Ts: 4}}, recs)
	_, other, err := tm.readRestore(ctx, job, sink, 0, handles)
	require.NoError(t, err)
	require.Nil(t, other, "subtask 0 had no channel state")

	// Another parallelism: refused, whichever vertex changed.
	for _, rescaled := range []*jobcode.Job{channelJob(url, 1, 4), channelJob(url, 2, 2)} {
		v := rescaled.JobGraph.Vertices[1]
		_, _, err = tm.readRestore(ctx, rescaled, v, 0, handles)
		require.Error(t, err)
		require.ErrorContains(t, err, "unaligned checkpoint")
		require.ErrorContains(t, err, "only be restored at the parallelism it was taken with")
	}
	// Without channel state a rescale is fine.
	handles.Operators[1].Subtasks[1].Channel = nil
	_, _, err = tm.readRestore(ctx, channelJob(url, 1, 4), channelJob(url, 1, 4).JobGraph.Vertices[1], 0, handles)
	require.NoError(t, err)
}
