package jobmaster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

func (h *harness) savepoint(t *testing.T) rpc.SavepointResult {
	t.Helper()
	return receive(t, h.savepoints, "savepoint request not answered")
}

// A savepoint request is answered exactly once even when no savepoint can
// be taken: an unusable target at once, and a request still waiting for
// the tasks to run (they never do: the TaskManager reads nothing) when
// the job ends — before the job's end is reported. The job has no
// checkpointing: its coordinator exists for savepoints anyway.
func TestJobMasterAnswersEverySavepointRequest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var stuck rpc.Endpoint
	h := start(t, ctx, &wg, oneVertexJob(2), "tm-1", "taskmanager-tm-1", func(c *Config) {
		var err error
		stuck, err = c.Transport.Listen("taskmanager-tm-1") // never read
		require.NoError(t, err)
	})
	defer stuck.Close()
	require.Eventually(t, func() bool { return h.state().State == scheduler.JobRunning }, 10*time.Second, time.Millisecond)
	jm := h.net.JobMaster("jm")

	require.NoError(t, jm.TriggerSavepoint(rpc.TriggerSavepoint{JobID: "job-1", RequestID: 1}))
	r := h.savepoint(t)
	require.Equal(t, uint64(1), r.RequestID)
	require.Empty(t, r.Path)
	require.Contains(t, r.Error, "savepoint of job job-1")
	require.Contains(t, r.Error, "empty location")

	require.NoError(t, jm.TriggerSavepoint(rpc.TriggerSavepoint{JobID: "job-1", RequestID: 2, Target: "mem://sp-never"}))
	select {
	case r := <-h.savepoints:
		t.Fatalf("answered %+v although the tasks never ran", r)
	case <-time.After(50 * time.Millisecond):
	}
	cancel() // the cluster shuts down
	r = h.savepoint(t)
	require.Equal(t, uint64(2), r.RequestID)
	require.Contains(t, r.Error, "savepoint of job job-1 to mem://sp-never failed: the job ended (CANCELED)")
	require.Equal(t, scheduler.JobCanceled, h.wait(t).State)
}
