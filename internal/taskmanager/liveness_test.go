package taskmanager

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// fakeTask puts a task of job under jobMaster into tm's table, as a
// deploy would, without running anything; its context says whether the
// TaskManager cancelled it.
func fakeTask(t *testing.T, tm *TaskManager, job, jobMaster string, subtask int) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	st := &slotTask{cancel: cancel, jobMaster: jobMaster, release: func() {}, ended: make(chan struct{})}
	tm.mu.Lock()
	tm.tasks[taskKey{job, scheduler.ExecutionID{Subtask: subtask}}] = st
	tm.mu.Unlock()
	t.Cleanup(func() {
		cancel()
		tm.mu.Lock()
		if st.watchdog != nil {
			st.watchdog.Stop()
		}
		tm.mu.Unlock()
	})
	return ctx
}

func cancelled(ctx context.Context) bool { return ctx.Err() != nil }

// A TaskManager whose JobMaster stops asking for heartbeats cancels that
// JobMaster's tasks after the heartbeat timeout, and only those; one whose
// ResourceManager stops asking registers again, retrying until a
// ResourceManager asks, while its tasks run on.
func TestLostJobManagerRoles(t *testing.T) {
	net := rpc.NewLocal()
	rm, err := net.Listen("rm")
	require.NoError(t, err)
	defer rm.Close()
	for _, a := range []string{"jm-a", "jm-b"} {
		ep, err := net.Listen(a)
		require.NoError(t, err)
		defer ep.Close()
	}
	tm, err := New(Config{ID: "tm-1", Address: "taskmanager-tm-1", Slots: 3, ResourceManager: "rm", Transport: net,
		Code: jobcode.NewRegistry(), Network: network.NewRegistry(), Logger: slog.New(slog.DiscardHandler), HeartbeatTimeout: time.Second})
	require.NoError(t, err)
	defer tm.ep.Close()
	reg := rpc.RegisterTaskManager{TaskManager: "tm-1", Address: "taskmanager-tm-1", Slots: 3}
	require.Equal(t, []rpc.Message{reg}, rm.Receive())

	t0 := time.Now()
	tm.heartbeat(rpc.HeartbeatRequest{ReplyTo: "rm", Seq: 1}, t0)
	a0 := fakeTask(t, tm, "job-a", "jm-a", 0)
	a1 := fakeTask(t, tm, "job-a", "jm-a", 1)
	b0 := fakeTask(t, tm, "job-b", "jm-b", 0)
	tm.checkLiveness(t0) // both JobMasters watched from now

	// jm-b keeps asking, jm-a is silent; the ResourceManager is silent too.
	tm.heartbeat(rpc.HeartbeatRequest{ReplyTo: "jm-b", JobID: "job-b", Seq: 1}, t0.Add(900*time.Millisecond))
	tm.checkLiveness(t0.Add(time.Second))
	require.False(t, cancelled(a0) || cancelled(a1) || cancelled(b0), "nothing is lost before the timeout")
	tm.registerAgain(t0.Add(time.Second))
	require.Len(t, rm.Receive(), 1, "only the heartbeat answer: no registration again yet")

	now := t0.Add(1500 * time.Millisecond)
	tm.checkLiveness(now)
	require.True(t, cancelled(a0) && cancelled(a1), "jm-a silent for 1.5s > 1s: its tasks are cancelled")
	require.False(t, cancelled(b0), "jm-b asked 600ms ago: its task runs on")

	// The ResourceManager was silent for 1.5s: register again at once,
	// then every RegistrationRetry until one asks.
	tm.registerAgain(now)
	require.Equal(t, []rpc.Message{reg}, rm.Receive())
	tm.registerAgain(now.Add(RegistrationRetry / 2))
	require.Empty(t, rm.Receive())
	tm.registerAgain(now.Add(RegistrationRetry))
	require.Equal(t, []rpc.Message{reg}, rm.Receive())
	tm.heartbeat(rpc.HeartbeatRequest{ReplyTo: "rm", Seq: 2}, now.Add(RegistrationRetry))
	tm.registerAgain(now.Add(3 * RegistrationRetry))
	msgs := rm.Receive()
	require.Len(t, msgs, 1)
	require.IsType(t, rpc.TaskManagerHeartbeat{}, msgs[0], "a ResourceManager asked: no more registrations")
	require.False(t, cancelled(b0), "the ResourceManager's loss cancels no task")

	// A JobMaster with no task left here is no longer watched.
	tm.mu.Lock()
	for k := range tm.tasks {
		if k.job == "job-a" {
			delete(tm.tasks, k)
		}
	}
	tm.mu.Unlock()
	tm.checkLiveness(now.Add(RegistrationRetry))
	require.NotContains(t, tm.jmSeen, "jm-a")
	require.Contains(t, tm.jmSeen, "jm-b")
}
