package strom_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/internal/blob"
	"github.com/strom-dev/strom/internal/minicluster"
	"github.com/strom-dev/strom/internal/scheduler"
)

// Failure detection of whole TaskManagers (issue 12.2): the sequence job
// of the chaos tests (exact keyed counts, order per lane and key) runs with
// every TaskManager a "process" of its own (own rpc.Network and data
// plane); once a checkpoint is retained, a TaskManager that runs a source
// is killed, frozen, or killed with no spare slot left. The job must end
// with exact results after exactly one restart.

// tmFault signals, once, that the map after the source has seen
// threshold records and a checkpoint is retained: the moment to hit a
// TaskManager.
type tmFault struct {
	store     blob.Store
	threshold int64
	processed atomic.Int64
	fired     atomic.Bool
	ckpt      atomic.Int64
	at        chan struct{}
}

type tmFaultMap struct{ f *tmFault }

func (m *tmFaultMap) ProcessElement(ctx *strom.ProcessContext[seqRecord], r seqRecord) error {
	f := m.f
	if f.processed.Add(1) >= f.threshold && !f.fired.Load() {
		if _, id, _ := latestRetained(nil, f.store); id > 0 && f.fired.CompareAndSwap(false, true) {
			f.ckpt.Store(id)
			close(f.at)
		}
	}
	ctx.Collect(r)
	return nil
}

// runWithTaskManagerFault runs the sequence job at parallelism p over tms
// TaskManagers of one slot, calls hit with the cluster and the index of
// the TaskManager running source subtask 0 once the fault is due, and
// checks exact final states. It returns the result and when hit was
// called.
func runWithTaskManagerFault(t *testing.T, p, tms int, mcfg func(*minicluster.Config), hit func(mc *minicluster.MiniCluster, tm int, job *minicluster.JobHandle)) (*strom.JobResult, time.Time) {
	t.Helper()
	const records, keys = 8000, 16
	data, counts := seqData(7, records, keys, p)
	url, store := memStore(t)
	f := &tmFault{store: store, threshold: records / 8, at: make(chan struct{})}
	cfg := chaosConfig(url, p, 3)
	cfg.TaskManagers, cfg.SlotsPerTaskManager, cfg.LoopbackNetwork = tms, 1, true
	env := strom.NewEnvironment(cfg)
	strom.ConfigureCluster(env, mcfg)
	bad := &violations{}
	src := strom.FromSource(env, strom.SliceSource(data), "sequences")
	mapped := strom.Process(src, func() strom.ProcessFunction[seqRecord, seqRecord] { return &tmFaultMap{f: f} })
	counted := strom.KeyedProcess(strom.KeyBy(mapped, func(r seqRecord) int64 { return r.Key }),
		func() strom.KeyedProcessFunction[int64, seqRecord, seqState] { return &seqCheckFn{bad: bad} })
	sink := &lastStates{last: map[int64]seqState{}}
	strom.SinkFunc(counted, sink.put)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	jc, err := env.ExecuteAsync(ctx, "sequences")
	require.NoError(t, err)
	defer jc.Close()
	mc := strom.Cluster(jc)
	var hitAt time.Time
	select {
	case <-f.at:
		h, err := mc.Job(jc.JobID())
		require.NoError(t, err)
		tm := -1
		_, execs := h.Status()
		for _, e := range execs {
			if e.ID.Vertex == 0 && e.ID.Subtask == 0 && e.State == scheduler.Running {
				n, err := strconv.Atoi(strings.TrimPrefix(e.Slot.TaskManager, "tm-"))
				require.NoError(t, err)
				tm = n - 1
			}
		}
		require.NotEqual(t, -1, tm, "source subtask 0 runs when the fault is due: %v", execs)
		hitAt = time.Now()
		hit(mc, tm, h)
	case <-jc.Done():
		t.Fatal("the job ended before a checkpoint was retained and the fault was due")
	}
	res, err := jc.Wait(ctx)
	require.NoError(t, err)
	require.Empty(t, bad.get(), "sequences in order per lane and key")
	require.Positive(t, res.RestoredCheckpoint)
	require.GreaterOrEqual(t, res.RestoredCheckpoint, f.ckpt.Load(), "restored from the checkpoint retained at the fault, or a later one")
	requireExactStates(t, sink, counts)
	return res, hitAt
}

// A killed TaskManager is found by its lost connection, at once (the
// heartbeat timeout here is 20 s): its tasks restart on the spare slot
// from the latest checkpoint, with exact results and one restart.
func TestKilledTaskManagerIsDetectedByConnectionLoss(t *testing.T) {
	const timeout = 20 * time.Second
	res, killed := runWithTaskManagerFault(t, 2, 3, func(c *minicluster.Config) {
		c.HeartbeatInterval, c.HeartbeatTimeout = 100*time.Millisecond, timeout
	}, func(mc *minicluster.MiniCluster, tm int, job *minicluster.JobHandle) {
		require.NoError(t, mc.KillTaskManager(tm))
	})
	require.Equal(t, 1, res.Restarts, "one restart for the lost TaskManager")
	require.Less(t, time.Since(killed), timeout/4, "recovered well before a heartbeat timeout could have found the loss")
}

// A frozen TaskManager keeps its connections: the heartbeat timeout finds
// it, its tasks restart on the spare slot; thawed, it is fenced (its stale
// tasks cancelled) and the results stay exact.
func TestFrozenTaskManagerIsDetectedByHeartbeatTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var frozen time.Time
	res, _ := runWithTaskManagerFault(t, 2, 3, func(c *minicluster.Config) {
		c.HeartbeatInterval, c.HeartbeatTimeout = 20*time.Millisecond, timeout
	}, func(mc *minicluster.MiniCluster, tm int, job *minicluster.JobHandle) {
		require.NoError(t, mc.FreezeTaskManager(tm))
		frozen = time.Now()
		require.Eventually(t, func() bool {
			_, execs := job.Status()
			return execs[0].ID.Attempt > 0
		}, 10*time.Second, time.Millisecond, "the job restarted without the frozen TaskManager")
		require.Eventually(t, func() bool { return mc.RegisteredSlots() < 3 }, 10*time.Second, time.Millisecond, "its slots were dropped")
		// Thawed, it answers the heartbeats that waited: it is told to
		// cancel its stale tasks and register again, and does.
		require.NoError(t, mc.ThawTaskManager(tm))
		require.Eventually(t, func() bool { return mc.RegisteredSlots() == 3 }, 10*time.Second, time.Millisecond,
			"the thawed TaskManager registered again")
	})
	require.GreaterOrEqual(t, time.Since(frozen), timeout, "found by the timeout, not before")
	require.GreaterOrEqual(t, res.Restarts, 1)
}

// A job short of slots after a kill waits (it is not failed) and resumes
// when a new TaskManager registers.
func TestJobShortOfSlotsWaitsForANewTaskManager(t *testing.T) {
	const wait = 300 * time.Millisecond
	var killed time.Time
	res, _ := runWithTaskManagerFault(t, 2, 2, func(c *minicluster.Config) {
		c.HeartbeatInterval, c.HeartbeatTimeout = 100*time.Millisecond, 20*time.Second
		c.SlotRequestTimeout = 30 * time.Second
	}, func(mc *minicluster.MiniCluster, tm int, job *minicluster.JobHandle) {
		require.NoError(t, mc.KillTaskManager(tm))
		killed = time.Now()
		time.Sleep(wait) // the job waits for a slot meanwhile
		require.NoError(t, mc.StartTaskManager())
	})
	require.Equal(t, 1, res.Restarts, "one restart: the slot request waited instead of failing")
	require.GreaterOrEqual(t, time.Since(killed), wait)
}
