package resourcemanager

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/heartbeat"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// TestMain runs the stand-in TaskManager process of
// TestLocalProcessesStartAndStopTaskManagers when started as one, and
// otherwise the tests, checking that none leaves a goroutine behind.
func TestMain(m *testing.M) {
	if os.Getenv(tmHelperEnv) != "" {
		os.Exit(taskManagerHelper(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// start runs a ResourceManager with TaskManagers of the given slot counts
// registered (tm-1, tm-2, ...) and returns a gateway to it and the
// endpoint of a stand-in JobMaster at "jm".
func start(t *testing.T, slots ...int) (rpc.ResourceManagerGateway, rpc.Endpoint) {
	t.Helper()
	net := rpc.NewLocal()
	return startWith(t, net, Config{}, slots...)
}

// startWith is start on net with cfg. The TaskManagers are stand-in
// endpoints that never answer heartbeats (the default timeout is longer
// than any test here).
func startWith(t *testing.T, net *rpc.Local, cfg Config, slots ...int) (rpc.ResourceManagerGateway, rpc.Endpoint) {
	t.Helper()
	return startLogged(t, net, cfg, slog.New(slog.DiscardHandler), slots...)
}

// startLogged is startWith with the ResourceManager's logger.
func startLogged(t *testing.T, net *rpc.Local, cfg Config, log *slog.Logger, slots ...int) (rpc.ResourceManagerGateway, rpc.Endpoint) {
	t.Helper()
	rm := run(t, net, cfg, log)
	gw := net.ResourceManager(rm.Address())
	for i, n := range slots {
		id := string(rune('1' + i))
		tm, err := net.Listen("taskmanager-tm-" + id)
		require.NoError(t, err)
		t.Cleanup(tm.Close)
		require.NoError(t, gw.RegisterTaskManager(rpc.RegisterTaskManager{TaskManager: "tm-" + id, Address: "taskmanager-tm-" + id, Slots: n}))
	}
	jm, err := net.Listen("jm")
	require.NoError(t, err)
	t.Cleanup(jm.Close)
	return gw, jm
}

// run starts a ResourceManager at "rm" on net, stopped when the test ends.
func run(t *testing.T, net rpc.Transport, cfg Config, log *slog.Logger) *ResourceManager {
	t.Helper()
	rm, err := NewWithConfig(net, "rm", log, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); rm.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return rm
}

// next is the stand-in JobMaster's next message.
func next(t *testing.T, ep rpc.Endpoint) rpc.Message {
	t.Helper()
	for {
		select {
		case <-ep.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("no answer from the resource manager")
		}
		if ms := ep.Receive(); len(ms) > 0 {
			require.Len(t, ms, 1, "one answer at a time")
			return ms[0]
		}
	}
}

func requireQuiet(t *testing.T, ep rpc.Endpoint) {
	t.Helper()
	time.Sleep(10 * time.Millisecond)
	require.Empty(t, ep.Receive())
}

func TestGrantsSpreadOverTaskManagersWithTheirAddresses(t *testing.T) {
	rm, jm := start(t, 2, 2)
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "a", RequestID: 1, N: 3, JobMaster: "jm"}))
	require.Equal(t, rpc.SlotsGranted{JobID: "a", RequestID: 1, Slots: []rpc.SlotOffer{
		{Slot: scheduler.SlotID{TaskManager: "tm-1", Index: 0}, Address: "taskmanager-tm-1"},
		{Slot: scheduler.SlotID{TaskManager: "tm-2", Index: 0}, Address: "taskmanager-tm-2"},
		{Slot: scheduler.SlotID{TaskManager: "tm-1", Index: 1}, Address: "taskmanager-tm-1"},
	}}, next(t, jm))
}

// A request for more slots than the cluster has waits (TaskManagers may
// register again after a failure) and is refused when its timeout passes.
func TestRequestTheClusterCannotHoldIsRefusedAfterTheTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	rm, jm := startWith(t, rpc.NewLocal(), Config{SlotRequestTimeout: timeout}, 2)
	asked := time.Now()
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "a", RequestID: 1, N: 3, JobMaster: "jm"}))
	require.Equal(t, rpc.SlotsRefused{JobID: "a", RequestID: 1, Reason: "no 3 free slots within the slot request timeout of 100ms: the cluster has 2 (1 TaskManagers)"}, next(t, jm))
	require.GreaterOrEqual(t, time.Since(asked), timeout)
}

// With RefuseAboveCapacity (an embedded cluster) a request for more slots
// than the cluster ever had is refused at once.
func TestRequestAboveCapacityIsRefusedAtOnce(t *testing.T) {
	rm, jm := startWith(t, rpc.NewLocal(), Config{RefuseAboveCapacity: true}, 2)
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "a", RequestID: 1, N: 3, JobMaster: "jm"}))
	require.Equal(t, rpc.SlotsRefused{JobID: "a", RequestID: 1, Reason: "job needs 3 slots but the cluster has 2 (1 TaskManagers)"}, next(t, jm))
}

// A request the cluster is short for is granted when a TaskManager
// registers in time.
func TestRequestWaitsForATaskManagerToRegister(t *testing.T) {
	net := rpc.NewLocal()
	rm, jm := startWith(t, net, Config{}, 1)
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "a", RequestID: 1, N: 2, JobMaster: "jm"}))
	requireQuiet(t, jm)
	tm, err := net.Listen("taskmanager-tm-9")
	require.NoError(t, err)
	t.Cleanup(tm.Close)
	require.NoError(t, rm.RegisterTaskManager(rpc.RegisterTaskManager{TaskManager: "tm-9", Address: "taskmanager-tm-9", Slots: 1}))
	require.Equal(t, rpc.SlotsGranted{JobID: "a", RequestID: 1, Slots: []rpc.SlotOffer{
		{Slot: scheduler.SlotID{TaskManager: "tm-1", Index: 0}, Address: "taskmanager-tm-1"},
		{Slot: scheduler.SlotID{TaskManager: "tm-9", Index: 0}, Address: "taskmanager-tm-9"},
	}}, next(t, jm))
}

// A request that must wait for another job's slots queues; withdrawing it
// (by job and request id) answers it with a refusal and leaves the slots
// to the next request; released slots serve the queue.
func TestQueuedRequestsWaitForReleaseAndCanBeWithdrawn(t *testing.T) {
	rm, jm := start(t, 1)
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "a", RequestID: 1, N: 1, JobMaster: "jm"}))
	granted := next(t, jm).(rpc.SlotsGranted)
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "b", RequestID: 1, N: 1, JobMaster: "jm"}))
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "c", RequestID: 1, N: 1, JobMaster: "jm"}))
	requireQuiet(t, jm)

	require.NoError(t, rm.CancelSlotRequest(rpc.CancelSlotRequest{JobID: "b", RequestID: 2})) // not b's request
	requireQuiet(t, jm)
	require.NoError(t, rm.CancelSlotRequest(rpc.CancelSlotRequest{JobID: "b", RequestID: 1}))
	require.Equal(t, rpc.SlotsRefused{JobID: "b", RequestID: 1, Reason: "slot request withdrawn"}, next(t, jm))

	require.NoError(t, rm.ReleaseSlots(rpc.ReleaseSlots{JobID: "a", Slots: []scheduler.SlotID{granted.Slots[0].Slot}}))
	require.Equal(t, rpc.SlotsGranted{JobID: "c", RequestID: 1, Slots: granted.Slots}, next(t, jm))
}

// A grant that cannot be delivered (the JobMaster is gone) keeps the slots
// free for the next request.
func TestGrantToAGoneJobMasterKeepsTheSlotsFree(t *testing.T) {
	rm, jm := start(t, 1)
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "gone", RequestID: 1, N: 1, JobMaster: "nobody"}))
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "a", RequestID: 1, N: 1, JobMaster: "jm"}))
	require.IsType(t, rpc.SlotsGranted{}, next(t, jm))
}

// A TaskManager silent for the heartbeat timeout has its slots dropped (a
// request then waits instead of getting them); when it answers again it
// is told to cancel its tasks and register again (fencing), and its new
// registration serves the waiting request.
func TestSilentTaskManagerIsDroppedAndFencedWhenItAnswers(t *testing.T) {
	net := rpc.NewLocal()
	rm, jm := startWith(t, net, Config{Heartbeat: heartbeat.Config{Interval: 10 * time.Millisecond, Timeout: 50 * time.Millisecond}})
	tm, err := net.Listen("taskmanager-tm-1")
	require.NoError(t, err)
	t.Cleanup(tm.Close)
	require.NoError(t, rm.RegisterTaskManager(rpc.RegisterTaskManager{TaskManager: "tm-1", Address: "taskmanager-tm-1", Slots: 1}))
	req := next(t, tm).(rpc.HeartbeatRequest)
	require.Equal(t, rpc.HeartbeatRequest{ReplyTo: "rm", Seq: req.Seq}, req)

	time.Sleep(100 * time.Millisecond) // silent past the timeout
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "a", RequestID: 1, N: 1, JobMaster: "jm"}))
	requireQuiet(t, jm)

	tm.Receive() // requests sent before the timeout
	require.NoError(t, rm.HeartbeatFromTaskManager(rpc.TaskManagerHeartbeat{TaskManager: "tm-1", Seq: req.Seq, Slots: 1}))
	fenced := next(t, tm).(rpc.HeartbeatRequest)
	require.True(t, fenced.Reregister, "a TaskManager declared dead must register again")
	requireQuiet(t, jm)
	require.NoError(t, rm.RegisterTaskManager(rpc.RegisterTaskManager{TaskManager: "tm-1", Address: "taskmanager-tm-1", Slots: 1}))
	require.Equal(t, rpc.SlotsGranted{JobID: "a", RequestID: 1, Slots: []rpc.SlotOffer{
		{Slot: scheduler.SlotID{TaskManager: "tm-1", Index: 0}, Address: "taskmanager-tm-1"}}}, next(t, jm))
}
