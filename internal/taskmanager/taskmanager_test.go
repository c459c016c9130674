package taskmanager

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A TaskManager registers its slots when created, and a deploy of a job
// whose code this process does not have, or of a vertex the job lacks,
// fails the execution with a message to its JobMaster.
func TestDeployNeedsTheJobsCodeInThisProcess(t *testing.T) {
	net := rpc.NewLocal()
	rm, err := net.Listen("rm")
	require.NoError(t, err)
	defer rm.Close()
	jm, err := net.Listen("jm")
	require.NoError(t, err)
	defer jm.Close()
	code := jobcode.NewRegistry()
	require.NoError(t, code.Register(&jobcode.Job{ID: "known", Name: "k", JobGraph: &jobgraph.JobGraph{}}))

	tm, err := New(Config{ID: "tm-1", Address: "taskmanager-tm-1", Slots: 2, ResourceManager: "rm", Transport: net,
		Code: code, Network: network.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.Equal(t, []rpc.Message{rpc.RegisterTaskManager{TaskManager: "tm-1", Address: "taskmanager-tm-1", Slots: 2}}, rm.Receive())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); tm.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	gw := net.TaskManager("taskmanager-tm-1")
	for _, job := range []string{"unknown", "known"} {
		id := scheduler.ExecutionID{Vertex: 0, Subtask: 0, Attempt: 1}
		require.NoError(t, gw.DeployTask(rpc.DeployTask{JobID: job, Execution: id, Slot: scheduler.SlotID{TaskManager: "tm-1"}, JobMaster: "jm"}))
		var u rpc.TaskStateUpdate
		require.Eventually(t, func() bool {
			for _, m := range jm.Receive() {
				u = m.(rpc.TaskStateUpdate)
				return true
			}
			return false
		}, 10*time.Second, time.Millisecond)
		require.Equal(t, job, u.JobID)
		require.Equal(t, id, u.Execution)
		require.Equal(t, scheduler.Failed, u.State)
		require.Nil(t, u.Metrics, "no task was built")
		if job == "unknown" {
			require.ErrorContains(t, u.Failure.Err(), "no code for job unknown in this process")
		} else {
			require.ErrorContains(t, u.Failure.Err(), "job known has no vertex 0")
		}
	}
}
