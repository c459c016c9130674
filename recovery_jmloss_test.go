package strom_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/file"
	"github.com/strom-dev/strom/internal/minicluster"
	"github.com/strom-dev/strom/internal/scheduler"
)

// JobManager failover (issue 12.1): the sequence job of the chaos tests
// writes every keyed state it produces — one line per record, (key,
// count, max sequence) — to the exactly-once file sink, and the
// JobManager's roles (Dispatcher, ResourceManager, JobMaster) are killed
// at random moments, each time after a newer checkpoint was retained, and
// started again over the same job store and checkpoint storage. The
// committed output must hold every (key, count) exactly once: the
// recovered JobMaster restored the latest checkpoint, the tasks the dead
// one left were stopped before they could commit, and the new attempts'
// in-progress files did not meet the old ones'.

// slowMap passes records on, sleeping now and then so the job outlives
// several JobManager restarts.
type slowMap struct{ processed *atomic.Int64 }

func (m *slowMap) ProcessElement(ctx *strom.ProcessContext[seqRecord], r seqRecord) error {
	if m.processed.Add(1)%16 == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx.Collect(r)
	return nil
}

// committedStates reads the states the sink committed (its visible files).
func committedStates(t *testing.T, dir string) []seqState {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []seqState
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // in progress: never committed
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var k, n, seq int64
			_, err := fmt.Sscanf(sc.Text(), "%d %d %d", &k, &n, &seq)
			require.NoError(t, err, "line %q of %s", sc.Text(), e.Name())
			// n distinct sequences seen: the highest is at least n-1.
			require.GreaterOrEqual(t, seq, n-1, "key %d: count %d with highest sequence %d", k, n, seq)
			out = append(out, seqState{Key: k, Count: n, MaxSeq: seq})
		}
		require.NoError(t, sc.Err())
		require.NoError(t, f.Close())
	}
	return out
}

// What runWithJobManagerKills kills.
type jmFault int

const (
	killJobManager jmFault = iota
	killResourceManager
	killJobMaster
)

func runWithJobManagerKills(t *testing.T, records int, loopback bool, kills int, seed uint64, what jmFault) *strom.JobResult {
	const keys, p = 16, 2
	data, counts := seqData(seed, records, keys, p)
	url, store := memStore(t)
	dir := t.TempDir()
	cfg := chaosConfig(url, p, 3)
	cfg.TaskManagers, cfg.SlotsPerTaskManager, cfg.LoopbackNetwork = 2, 1, loopback
	env := strom.NewEnvironment(cfg)
	strom.ConfigureCluster(env, func(c *minicluster.Config) {
		c.HeartbeatInterval, c.HeartbeatTimeout = 50*time.Millisecond, time.Second
	})
	bad := &violations{}
	var processed atomic.Int64
	src := strom.FromSource(env, strom.SliceSource(data), "sequences").UID("src")
	slow := strom.Process(src, func() strom.ProcessFunction[seqRecord, seqRecord] { return &slowMap{processed: &processed} }).UID("slow")
	counted := strom.KeyedProcess(strom.KeyBy(slow, func(r seqRecord) int64 { return r.Key }),
		func() strom.KeyedProcessFunction[int64, seqRecord, seqState] { return &seqCheckFn{bad: bad} }).UID("count")
	file.WriteLinesExactlyOnce(counted, dir, func(s seqState) string { return fmt.Sprintf("%d %d %d", s.Key, s.Count, s.MaxSeq) }).UID("sink")

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	jc, err := env.ExecuteAsync(ctx, "sequences")
	require.NoError(t, err)
	defer jc.Close()
	mc := strom.Cluster(jc)
	rng := rand.New(rand.NewPCG(seed, 1))
	var lastCk int64
	for i := range kills {
		// A checkpoint newer than the one of the last kill: each
		// recovery has progress to restore, not only a replay.
		require.Eventually(t, func() bool {
			_, id, _ := latestRetained(nil, store)
			return id > lastCk
		}, 60*time.Second, time.Millisecond, "a new checkpoint before kill %d", i+1)
		time.Sleep(time.Duration(rng.IntN(80)) * time.Millisecond)
		select {
		case <-jc.Done():
			t.Fatalf("the job ended after %d of %d JobManager kills: make it longer", i, kills)
		default:
		}
		_, lastCk, _ = latestRetained(nil, store)
		if what == killJobMaster {
			require.NoError(t, mc.KillJobMaster(jc.JobID()))
			h, err := mc.Job(jc.JobID())
			require.NoError(t, err)
			requireAttemptsAbove(t, h, i+1)
			continue
		}
		if what == killResourceManager {
			require.NoError(t, mc.KillResourceManager())
			require.Zero(t, mc.RegisteredSlots())
			time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
			require.NoError(t, mc.StartResourceManager())
			require.Equal(t, 2, mc.RegisteredSlots(), "the TaskManagers registered with the new ResourceManager")
			select {
			case <-jc.Done():
				t.Fatalf("the job ended while the ResourceManager was down (kill %d): make it longer", i+1)
			default:
			}
			continue
		}
		require.NoError(t, mc.KillJobManager())
		_, err := mc.Job(jc.JobID())
		require.Error(t, err, "no Dispatcher while the JobManager is down")
		time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
		require.NoError(t, mc.StartJobManager())
		h, err := mc.Job(jc.JobID())
		require.NoError(t, err, "the new Dispatcher knows the job at once, from the job store")
		requireAttemptsAbove(t, h, i+1)
	}
	res, err := jc.Wait(ctx)
	require.NoError(t, err)
	require.Empty(t, bad.get(), "sequences in order per lane and key")
	require.Positive(t, lastCk, "a checkpoint completed before the kills")
	if what != killResourceManager {
		require.GreaterOrEqual(t, res.RestoredCheckpoint, lastCk, "the last JobMaster restored the checkpoint retained at the last kill, or a later one")
	} else {
		require.Zero(t, res.Restarts, "the job never noticed the ResourceManager's restarts")
	}
	requireEachRecordOnce(t, committedStates(t, dir), counts)
	l, err := mc.JobStore().List()
	require.NoError(t, err)
	require.Empty(t, l, "the finished job left the job store")
	return res
}

// The JobManager killed three times at random moments, in process (one
// transport) and with every role a "process" of its own (NetworkRPC and
// data planes).
func TestJobManagerKilledAndRestarted(t *testing.T) {
	for _, loopback := range []bool{false, true} {
		t.Run(fmt.Sprintf("network=%v", loopback), func(t *testing.T) {
			runWithJobManagerKills(t, 16000, loopback, 3, 11, killJobManager)
		})
	}
}

// The ResourceManager alone killed and restarted twice: the TaskManagers
// register with the new one, the job runs on untouched.
func TestResourceManagerKilledAndRestarted(t *testing.T) {
	for _, loopback := range []bool{false, true} {
		t.Run(fmt.Sprintf("network=%v", loopback), func(t *testing.T) {
			runWithJobManagerKills(t, 96000, loopback, 2, 12, killResourceManager)
		})
	}
}

// The JobMaster alone killed three times: the Dispatcher starts a new one
// in recovery mode each time, which gets the dead one's slots back.
func TestJobMasterKilledAndRecovered(t *testing.T) {
	runWithJobManagerKills(t, 16000, true, 3, 13, killJobMaster)
}

// requireAttemptsAbove checks that the job's executions, as the handle
// shows them, are numbered from the attempt base of incarnation n.
func requireAttemptsAbove(t *testing.T, h *minicluster.JobHandle, n int) {
	t.Helper()
	_, execs := h.Status()
	require.NotEmpty(t, execs)
	for _, e := range execs {
		require.GreaterOrEqual(t, e.ID.Attempt, scheduler.AttemptBase(n), "recovery %d numbers attempts above the earlier JobMasters'", n)
	}
}
