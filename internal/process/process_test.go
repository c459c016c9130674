package process_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A job spread over three TaskManager processes gives the same output as
// the embedded cluster: exactly once, record for record.
func TestJobOverThreeTaskManagerProcessesMatchesEmbedded(t *testing.T) {
	c := startCluster(t, 3, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dist := newSeqJob(t, 6000, 6, 3, "--rate", "0")
	out, err := dist.run(ctx, c.rest)
	require.NoError(t, err, out)
	require.Contains(t, out, "finished")
	dist.checkExact(t)
	// Every TaskManager ran a worker: the job was really spread.
	for _, id := range c.liveTMs() {
		require.Contains(t, c.tm(id).stderr(), "job worker started", id)
	}
	emb := newSeqJob(t, 6000, 6, 3, "--rate", "0")
	out, err = emb.run(ctx, "")
	require.NoError(t, err, out)
	emb.checkExact(t)
	a, b := dist.committed(t), emb.committed(t)
	less := func(x, y outRecord) int {
		if x.Key != y.Key {
			return int(x.Key - y.Key)
		}
		return int(x.Seq - y.Seq)
	}
	slices.SortFunc(a, less)
	slices.SortFunc(b, less)
	require.Equal(t, b, a)
}

// TaskManagers SIGKILLed at random moments, again and again (each
// replaced by a new one, as a supervisor would), lose and duplicate
// nothing in the exactly-once sink.
func TestTaskManagersKilledAgainAndAgainLoseNothing(t *testing.T) {
	c := startCluster(t, 3, 2, "--heartbeat-timeout", "3s")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	job := newSeqJob(t, 48000, 6, 2, "--rate", "4000", "--interval", "100ms")
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := job.run(ctx, c.rest)
		done <- result{out, err}
	}()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills := 0
	var res result
loop:
	for {
		select {
		case res = <-done:
			break loop
		case <-time.After(time.Duration(1200+rng.IntN(1500)) * time.Millisecond):
		}
		if kills >= 4 {
			continue
		}
		live := c.liveTMs()
		victim := live[rng.IntN(len(live))]
		c.tm(victim).kill()
		kills++
		t.Logf("killed %s (kill %d)", victim, kills)
		c.startTM()
	}
	require.NoError(t, res.err, res.out)
	require.GreaterOrEqual(t, kills, 3, "the job ended before the TaskManagers were killed: the test proves nothing")
	job.checkExact(t)
	// The submitting client learns of the restarts (numRestarts).
	require.Regexp(t, `seqjob: job [0-9a-f]{32} finished in \S+ \(restarts [1-9][0-9]*, checkpoints [1-9]`, res.out)
	log := c.jm.stderr()
	require.Contains(t, log, "job restarting", "no restart: the kills hit nothing")
	require.Contains(t, log, "connection lost")
	require.Contains(t, log, "checkpoint completed")
	require.Contains(t, log, "job restoring from checkpoint", "no restart restored a checkpoint: the kills came before any")
}

// A TaskManager frozen with SIGSTOP is found by the heartbeat timeout; its
// tasks run again elsewhere; when it wakes it is fenced — told to
// register again, it stops its job workers — and the output stays exact.
func TestFrozenTaskManagerIsFencedAndItsTasksRestartElsewhere(t *testing.T) {
	c := startCluster(t, 3, 1, "--heartbeat-interval", "200ms", "--heartbeat-timeout", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	job := newSeqJob(t, 24000, 4, 2, "--rate", "4000", "--interval", "100ms")
	done := make(chan error, 1)
	var out string
	go func() {
		var err error
		out, err = job.run(ctx, c.rest)
		done <- err
	}()
	// Freeze a TaskManager that runs a worker of the job.
	var frozen string
	require.Eventually(t, func() bool {
		for _, id := range c.liveTMs() {
			if strings.Contains(c.tm(id).stderr(), "job worker started") {
				frozen = id
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond)
	time.Sleep(time.Second) // a checkpoint or two first
	c.tm(frozen).signal(syscall.SIGSTOP)
	require.Eventually(t, func() bool {
		return strings.Contains(c.jm.stderr(), "heartbeat timeout")
	}, 20*time.Second, 50*time.Millisecond, "the frozen TaskManager was not found by its heartbeat timeout")
	time.Sleep(1500 * time.Millisecond) // the job runs on elsewhere meanwhile
	c.tm(frozen).signal(syscall.SIGCONT)
	require.NoError(t, <-done, out)
	job.checkExact(t)
	require.Contains(t, c.jm.stderr(), "job restarting")
	require.Contains(t, c.jm.stderr(), "job restoring from checkpoint")
	require.Eventually(t, func() bool {
		return strings.Contains(c.tm(frozen).stderr(), "declared dead")
	}, 10*time.Second, 50*time.Millisecond, "the woken TaskManager was not fenced")
}

// A job binary that crashes its process (a panic on a goroutine of its
// own, which nothing can recover) takes down its job worker only: the
// TaskManagers keep running, and so does another job on them, to an
// exact end.
func TestCrashingJobBinaryLeavesTaskManagersAndOtherJobsRunning(t *testing.T) {
	c := startCluster(t, 2, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	good := newSeqJob(t, 16000, 4, 2, "--rate", "4000")
	goodDone := make(chan error, 1)
	var goodOut string
	go func() {
		var err error
		goodOut, err = good.run(ctx, c.rest)
		goodDone <- err
	}()
	time.Sleep(time.Second)
	bad := newSeqJob(t, 16000, 4, 2, "--rate", "4000", "--crash-after", "200", "--restarts", "0")
	out, err := bad.run(ctx, c.rest)
	require.Error(t, err, "the crashing job should fail: %s", out)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Contains(t, out, "job failed")
	// The TaskManager that ran the crashed worker says why it died, with
	// what the process printed (the job's first failure may be a peer's
	// broken channel instead).
	crashed := 0
	for _, id := range c.liveTMs() {
		if log := c.tm(id).stderr(); strings.Contains(log, "job worker died") && strings.Contains(log, "a crash, on purpose") {
			crashed++
		}
	}
	require.Positive(t, crashed, "no TaskManager saw the worker crash")
	require.NoError(t, <-goodDone, goodOut)
	good.checkExact(t)
	for _, id := range c.liveTMs() {
		require.True(t, c.tm(id).alive(), id)
	}
	require.Len(t, c.liveTMs(), 2, "a TaskManager died with the job")
}

// `strom nexmark --cluster` runs a query on the cluster — the strom
// binary submits itself and the TaskManagers run it as the job binary —
// with checkpoints into an exactly-once output directory whose committed
// rows are those of the embedded run.
func TestNexmarkOnTheClusterMatchesEmbedded(t *testing.T) {
	c := startCluster(t, 2, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, q := range []string{"q5", "q8"} {
		rows := map[string][]string{}
		for _, where := range []string{"cluster", "embedded"} {
			dir := t.TempDir()
			args := []string{"nexmark", "--query", q, "--events", "300000", "--parallelism", "2", "--tps", "200000",
				"--checkpoint-interval", "100ms", "--checkpoint-dir", "file://" + filepath.Join(dir, "ck"),
				"--output", filepath.Join(dir, "out"), "--json"}
			if where == "cluster" {
				args = append(args, "--cluster", c.rest)
			}
			out, err := exec.CommandContext(ctx, bins.strom, args...).Output()
			require.NoError(t, err, "%s %s", q, where)
			var sum struct {
				Rows        int64 `json:"rows"`
				Checkpoints int   `json:"checkpoints_completed"`
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &sum), string(out))
			rows[where] = committedLines(t, filepath.Join(dir, "out"))
			require.EqualValues(t, len(rows[where]), sum.Rows, "%s %s: rows reported and committed", q, where)
			require.NotEmpty(t, rows[where], "%s %s", q, where)
			require.Positive(t, sum.Checkpoints, "%s %s: no checkpoint completed", q, where)
		}
		require.Equal(t, rows["embedded"], rows["cluster"], q)
	}
}

// committedLines are the sorted lines of an exactly-once output
// directory's committed files.
func committedLines(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out = append(out, strings.Split(strings.TrimRight(string(b), "\n"), "\n")...)
	}
	slices.Sort(out)
	return out
}
