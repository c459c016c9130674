package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/scheduler"
)

// These tests drive a JobMaster against a real ResourceManager but with
// TaskManagers that are missing or never read their inbox: the shell must
// keep its loop free whatever its peers do.

// oneVertexJob is a job of one vertex with parallelism p; no task of it is
// ever built here, so it needs no StreamGraph.
func oneVertexJob(p int) *Job {
	return &Job{ID: NewJobID(), Name: "j", JobGraph: &jobgraph.JobGraph{JobName: "j", MaxParallelism: 128, Vertices: []*jobgraph.JobVertex{
		{ID: 0, Name: "v", Parallelism: p, MaxParallelism: 128, SlotSharingGroup: "default", IsSource: true},
	}}}
}

// startRM runs a ResourceManager with one TaskManager of n slots registered
// under id; the TaskManager object itself is tm (nil: none exists).
func startRM(t *testing.T, ctx context.Context, wg *sync.WaitGroup, id string, n int, tm *TaskManager) *ResourceManager {
	t.Helper()
	rm := newResourceManager()
	wg.Add(1)
	go func() { defer wg.Done(); rm.run(ctx) }()
	require.NoError(t, rm.send(ctx, msgRegisterTM{ID: id, Slots: n, TM: tm}))
	return rm
}

// Every deploy to a TaskManager the JobMaster does not know fails its
// execution. The JobMaster used to report that by posting to its own inbox
// from inside its loop, which blocks for good once the inbox is full (here:
// 32 deploys, an inbox of one). Now the failures go through a local queue.
func TestJobMasterDeploysToUnknownTaskManagerWithFullInbox(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	const p = 32
	rm := startRM(t, ctx, &wg, "ghost", p, nil)
	jm := newJobMaster(oneVertexJob(p), rm, map[string]*TaskManager{})
	jm.inbox = make(chan any, 1)
	wg.Add(1)
	go func() { defer wg.Done(); jm.run(ctx) }()

	h := &JobHandle{jm: jm}
	r := wait(t, h)
	require.Equal(t, scheduler.JobFailed, r.State)
	require.ErrorContains(t, r.Err, "no TaskManager ghost")
	_, execs := h.Status()
	require.Len(t, execs, p)
	for _, e := range execs {
		require.Equal(t, scheduler.Failed, e.State, "%v", e.ID)
	}
	select {
	case <-jm.stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("JobMaster loop did not end")
	}
}

// A TaskManager that does not read its inbox must not stop the JobMaster:
// its deploys wait in the outbox while the JobMaster keeps taking messages
// (here the user's cancel). It used to block in the send, so the cancel was
// never seen.
func TestJobMasterKeepsServingWhileTaskManagerIsStuck(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	const p = 8
	stuck := &TaskManager{ID: "tm-1", Slots: p, inbox: make(chan any, 1)} // never run
	rm := startRM(t, ctx, &wg, stuck.ID, p, stuck)
	jm := newJobMaster(oneVertexJob(p), rm, map[string]*TaskManager{stuck.ID: stuck})
	wg.Add(1)
	go func() { defer wg.Done(); jm.run(ctx) }()

	h := &JobHandle{jm: jm}
	require.Eventually(t, func() bool { st, _ := h.Status(); return st == scheduler.JobRunning }, 10*time.Second, time.Millisecond)
	h.Cancel()
	require.Eventually(t, func() bool {
		st, execs := h.Status()
		return st == scheduler.JobCanceling && execs[p-1].State == scheduler.Canceling
	}, 10*time.Second, time.Millisecond, "the JobMaster took the cancel although the TaskManager's inbox is full")
	require.Len(t, stuck.inbox, 1)
	select {
	case <-h.Done():
		t.Fatal("job ended before its tasks were cancelled")
	default:
	}

	// Shutting the cluster down ends the JobMaster with the messages still
	// queued.
	cancel()
	r := wait(t, h)
	require.Equal(t, scheduler.JobCanceled, r.State)
	require.ErrorContains(t, r.Err, "cluster shut down")
}
