package cluster

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/jobgraph"
)

// The Scheduler is a pure state machine: these tests script events and
// check the actions and states it answers with, without goroutines.

func twoVertexGraph() *jobgraph.JobGraph {
	return &jobgraph.JobGraph{JobName: "job", MaxParallelism: 128, Vertices: []*jobgraph.JobVertex{
		{ID: 0, Name: "src", Parallelism: 2, MaxParallelism: 128, SlotSharingGroup: "default", IsSource: true},
		{ID: 1, Name: "sink", Parallelism: 2, MaxParallelism: 128, SlotSharingGroup: "default"},
	}, Edges: []*jobgraph.JobEdge{{From: 0, To: 1, Partition: "REBALANCE"}}}
}

var (
	slotA = SlotID{TaskManager: "tm-1", Index: 0}
	slotB = SlotID{TaskManager: "tm-2", Index: 0}
	slotC = SlotID{TaskManager: "tm-1", Index: 1}
)

func eid(v, s int) ExecutionID { return ExecutionID{Vertex: v, Subtask: s} }

func states(s *Scheduler) map[ExecutionID]ExecState {
	m := map[ExecutionID]ExecState{}
	for _, e := range s.Executions() {
		m[e.ID] = e.State
	}
	return m
}

func allIn(t *testing.T, s *Scheduler, want ExecState) {
	t.Helper()
	for id, st := range states(s) {
		require.Equal(t, want, st, "execution %v", id)
	}
}

// startRunning takes a fresh scheduler to RUNNING with every task RUNNING.
func startRunning(t *testing.T, s *Scheduler) {
	t.Helper()
	require.Equal(t, []any{ActRequestSlots{N: 2}}, s.Handle(EvStart{}))
	s.Handle(EvSlotsGranted{Slots: []SlotID{slotA, slotB}})
	for _, id := range []ExecutionID{eid(0, 0), eid(0, 1), eid(1, 0), eid(1, 1)} {
		require.Empty(t, s.Handle(EvTaskState{ID: id, State: Initializing}))
		require.Empty(t, s.Handle(EvTaskState{ID: id, State: Running}))
	}
	require.Equal(t, JobRunning, s.State())
	allIn(t, s, Running)
}

func TestSchedulerHappyPath(t *testing.T) {
	s := NewScheduler(twoVertexGraph())
	require.Equal(t, JobCreated, s.State())
	allIn(t, s, Created)

	require.Equal(t, []any{ActRequestSlots{N: 2}}, s.Handle(EvStart{}))
	allIn(t, s, Scheduled)
	require.Nil(t, s.Handle(EvStart{}), "a second start is ignored")

	acts := s.Handle(EvSlotsGranted{Slots: []SlotID{slotA, slotB}})
	// Slot sharing: subtask i of every vertex goes to slot i.
	require.Equal(t, []any{
		ActDeploy{ID: eid(0, 0), Slot: slotA},
		ActDeploy{ID: eid(0, 1), Slot: slotB},
		ActDeploy{ID: eid(1, 0), Slot: slotA},
		ActDeploy{ID: eid(1, 1), Slot: slotB},
	}, acts)
	require.Equal(t, JobRunning, s.State())
	allIn(t, s, Deploying)

	ids := []ExecutionID{eid(0, 0), eid(0, 1), eid(1, 0), eid(1, 1)}
	for _, st := range []ExecState{Initializing, Running} {
		for _, id := range ids {
			require.Empty(t, s.Handle(EvTaskState{ID: id, State: st}))
		}
		allIn(t, s, st)
	}
	for _, id := range ids[:3] {
		require.Empty(t, s.Handle(EvTaskState{ID: id, State: Finished}))
		require.Equal(t, JobRunning, s.State())
	}
	acts = s.Handle(EvTaskState{ID: ids[3], State: Finished})
	require.Equal(t, []any{
		ActReleaseSlots{Slots: []SlotID{slotA, slotB}},
		ActJobDone{State: JobFinished},
	}, acts)
	require.Equal(t, JobFinished, s.State())
	require.NoError(t, s.Err())
	allIn(t, s, Finished)

	// Late events change nothing.
	require.Empty(t, s.Handle(EvTaskState{ID: ids[0], State: Failed, Err: errors.New("late")}))
	require.Empty(t, s.Handle(EvCancel{}))
	require.Equal(t, JobFinished, s.State())
}

func TestSchedulerTaskFailureCancelsTheOthers(t *testing.T) {
	s := NewScheduler(twoVertexGraph())
	startRunning(t, s)
	require.Empty(t, s.Handle(EvTaskState{ID: eid(0, 1), State: Finished}))

	cause := errors.New("operator Map failed")
	acts := s.Handle(EvTaskState{ID: eid(1, 0), State: Failed, Err: cause})
	require.Equal(t, []any{
		ActCancelTask{ID: eid(0, 0), Slot: slotA},
		ActCancelTask{ID: eid(1, 1), Slot: slotB},
	}, acts, "every task still running is cancelled; finished ones are left alone")
	require.Equal(t, JobFailing, s.State())
	require.Equal(t, map[ExecutionID]ExecState{
		eid(0, 0): Canceling, eid(0, 1): Finished, eid(1, 0): Failed, eid(1, 1): Canceling,
	}, states(s))

	// A second failure while failing keeps the first cause.
	require.Empty(t, s.Handle(EvTaskState{ID: eid(1, 1), State: Failed, Err: errors.New("consequence")}))
	acts = s.Handle(EvTaskState{ID: eid(0, 0), State: Canceled})
	require.Equal(t, []any{
		ActReleaseSlots{Slots: []SlotID{slotA, slotB}},
		ActJobDone{State: JobFailed, Err: cause},
	}, acts)
	require.Equal(t, JobFailed, s.State())
	require.ErrorIs(t, s.Err(), cause)
	for _, e := range s.Executions() {
		if e.ID == eid(1, 0) {
			require.ErrorIs(t, e.Err, cause)
		}
	}
}

func TestSchedulerFailureWithoutCause(t *testing.T) {
	s := NewScheduler(twoVertexGraph())
	startRunning(t, s)
	s.Handle(EvTaskState{ID: eid(0, 0), State: Failed})
	require.ErrorContains(t, s.Err(), "task failed")
}

func TestSchedulerFailureWhileDeploying(t *testing.T) {
	s := NewScheduler(twoVertexGraph())
	s.Handle(EvStart{})
	s.Handle(EvSlotsGranted{Slots: []SlotID{slotA, slotB}})
	cause := errors.New("build: bad operator")
	acts := s.Handle(EvTaskState{ID: eid(1, 1), State: Failed, Err: cause})
	require.Len(t, acts, 3, "the three deploying tasks are cancelled")
	for _, id := range []ExecutionID{eid(0, 0), eid(0, 1), eid(1, 0)} {
		s.Handle(EvTaskState{ID: id, State: Canceled})
	}
	require.Equal(t, JobFailed, s.State())
	require.ErrorIs(t, s.Err(), cause)
}

func TestSchedulerUnexpectedCancelFailsTheJob(t *testing.T) {
	s := NewScheduler(twoVertexGraph())
	startRunning(t, s)
	acts := s.Handle(EvTaskState{ID: eid(0, 1), State: Canceled})
	require.Len(t, acts, 3)
	require.Equal(t, JobFailing, s.State())
	require.ErrorContains(t, s.Err(), "v0/1#0 was canceled unexpectedly")
}

func TestSchedulerCancelRunningJob(t *testing.T) {
	s := NewScheduler(twoVertexGraph())
	startRunning(t, s)
	require.Empty(t, s.Handle(EvTaskState{ID: eid(0, 0), State: Finished}))
	acts := s.Handle(EvCancel{})
	require.Equal(t, []any{
		ActCancelTask{ID: eid(0, 1), Slot: slotB},
		ActCancelTask{ID: eid(1, 0), Slot: slotA},
		ActCancelTask{ID: eid(1, 1), Slot: slotB},
	}, acts)
	require.Equal(t, JobCanceling, s.State())
	require.Empty(t, s.Handle(EvCancel{}), "cancelling twice does nothing more")
	s.Handle(EvTaskState{ID: eid(0, 1), State: Canceled})
	// A task that fails while being cancelled does not turn the job FAILED.
	s.Handle(EvTaskState{ID: eid(1, 0), State: Failed, Err: errors.New("interrupted")})
	acts = s.Handle(EvTaskState{ID: eid(1, 1), State: Canceled})
	require.Equal(t, []any{
		ActReleaseSlots{Slots: []SlotID{slotA, slotB}},
		ActJobDone{State: JobCanceled},
	}, acts)
	require.Equal(t, JobCanceled, s.State())
}

func TestSchedulerCancelBeforeStart(t *testing.T) {
	s := NewScheduler(twoVertexGraph())
	require.Equal(t, []any{ActJobDone{State: JobCanceled}}, s.Handle(EvCancel{}))
	allIn(t, s, Canceled)
	require.Empty(t, s.Handle(EvStart{}))
}

func TestSchedulerCancelWhileWaitingForSlots(t *testing.T) {
	// The slots arrive after the cancel: they go straight back.
	s := NewScheduler(twoVertexGraph())
	s.Handle(EvStart{})
	acts := s.Handle(EvCancel{})
	require.Equal(t, []any{ActCancelSlotRequest{}}, acts, "the job ends only when the withdrawn slot request is answered")
	require.Equal(t, JobCanceling, s.State())
	allIn(t, s, Canceled)
	acts = s.Handle(EvSlotsGranted{Slots: []SlotID{slotA, slotB}})
	require.Equal(t, []any{
		ActReleaseSlots{Slots: []SlotID{slotA, slotB}},
		ActJobDone{State: JobCanceled},
	}, acts)
	require.Equal(t, JobCanceled, s.State())
	require.NoError(t, s.Err())

	// The request is withdrawn and refused: the job is CANCELED, not FAILED.
	s = NewScheduler(twoVertexGraph())
	s.Handle(EvStart{})
	s.Handle(EvCancel{})
	acts = s.Handle(EvSlotsRefused{Err: errors.New("slot request withdrawn")})
	require.Equal(t, []any{ActJobDone{State: JobCanceled}}, acts)
	require.Equal(t, JobCanceled, s.State())
	allIn(t, s, Canceled)
}

func TestSchedulerSlotsRefused(t *testing.T) {
	s := NewScheduler(twoVertexGraph())
	s.Handle(EvStart{})
	cause := errors.New("job needs 2 slots but the cluster has 1")
	acts := s.Handle(EvSlotsRefused{Err: cause})
	require.Len(t, acts, 1)
	done := acts[0].(ActJobDone)
	require.Equal(t, JobFailed, done.State)
	require.ErrorIs(t, done.Err, cause)
	require.ErrorContains(t, done.Err, "could not allocate slots")
	require.Equal(t, JobFailed, s.State())
	allIn(t, s, Failed)
	require.Empty(t, s.Handle(EvSlotsRefused{Err: cause}))
}

func TestSchedulerTooFewSlotsGranted(t *testing.T) {
	s := NewScheduler(twoVertexGraph())
	s.Handle(EvStart{})
	acts := s.Handle(EvSlotsGranted{Slots: []SlotID{slotA}})
	require.Len(t, acts, 2)
	require.Equal(t, ActReleaseSlots{Slots: []SlotID{slotA}}, acts[0], "slots the job cannot use go back")
	done := acts[1].(ActJobDone)
	require.Equal(t, JobFailed, done.State)
	require.ErrorContains(t, done.Err, "granted 1 slots, need 2")
}

func TestSchedulerIgnoresStaleAndUnknownExecutions(t *testing.T) {
	s := NewScheduler(twoVertexGraph())
	startRunning(t, s)
	stale := ExecutionID{Vertex: 0, Subtask: 1, Attempt: 1}
	require.Empty(t, s.Handle(EvTaskState{ID: stale, State: Failed, Err: errors.New("old attempt")}))
	require.Empty(t, s.Handle(EvTaskState{ID: ExecutionID{Vertex: 5}, State: Failed}))
	require.Empty(t, s.Handle(EvTaskState{ID: ExecutionID{Vertex: 0, Subtask: 9}, State: Failed}))
	require.Empty(t, s.Handle(EvTaskState{ID: ExecutionID{Vertex: -1}, State: Failed}))
	require.Equal(t, JobRunning, s.State())
	allIn(t, s, Running)

	// A terminal execution does not come back to life.
	s.Handle(EvTaskState{ID: eid(0, 0), State: Finished})
	s.Handle(EvTaskState{ID: eid(0, 0), State: Running})
	require.Equal(t, Finished, states(s)[eid(0, 0)])
}

func TestSchedulerSlotSharingGroups(t *testing.T) {
	jg := &jobgraph.JobGraph{JobName: "job", MaxParallelism: 128, Vertices: []*jobgraph.JobVertex{
		{ID: 0, Name: "src", Parallelism: 2, SlotSharingGroup: "default", IsSource: true},
		{ID: 1, Name: "heavy", Parallelism: 1, SlotSharingGroup: "heavy"},
		{ID: 2, Name: "sink", Parallelism: 1, SlotSharingGroup: "default"},
	}}
	s := NewScheduler(jg)
	require.Equal(t, []any{ActRequestSlots{N: 3}}, s.Handle(EvStart{}))
	acts := s.Handle(EvSlotsGranted{Slots: []SlotID{slotA, slotB, slotC}})
	// Groups take consecutive runs of slots in name order: default [A B], heavy [C].
	require.Equal(t, []any{
		ActDeploy{ID: eid(0, 0), Slot: slotA},
		ActDeploy{ID: eid(0, 1), Slot: slotB},
		ActDeploy{ID: eid(1, 0), Slot: slotC},
		ActDeploy{ID: eid(2, 0), Slot: slotA},
	}, acts)
}

func TestStateNames(t *testing.T) {
	require.Equal(t, "CREATED", Created.String())
	require.Equal(t, "SCHEDULED", Scheduled.String())
	require.Equal(t, "DEPLOYING", Deploying.String())
	require.Equal(t, "INITIALIZING", Initializing.String())
	require.Equal(t, "RUNNING", Running.String())
	require.Equal(t, "FINISHED", Finished.String())
	require.Equal(t, "CANCELED", Canceled.String())
	require.Equal(t, "FAILED", Failed.String())
	require.Equal(t, "ExecState(42)", ExecState(42).String())
	require.Equal(t, "RUNNING", JobRunning.String())
	require.Equal(t, "FAILED", JobFailed.String())
	require.Equal(t, "JobState(42)", JobState(42).String())
	for _, st := range []ExecState{Finished, Canceled, Failed} {
		require.True(t, st.Terminal())
	}
	for _, st := range []ExecState{Created, Scheduled, Deploying, Initializing, Running, Canceling} {
		require.False(t, st.Terminal())
	}
	require.Equal(t, "v1/2#3", ExecutionID{1, 2, 3}.String())
	require.Equal(t, "tm-1/slot-0", slotA.String())
}
