package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// newLocal returns a provider whose workers are this test binary in the
// given helper mode, and closes it when the test ends.
func newLocal(t *testing.T, mode string, cfg LocalConfig) *LocalProcesses {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cfg.Command = []string{exe, "worker", "{id}", "{slots}"}
	cfg.Env = append(cfg.Env, helperEnv+"="+mode, fmt.Sprintf("%s=%d", runEnv, os.Getpid()))
	cfg.Logger = slog.New(slog.DiscardHandler)
	if cfg.LogDir == "" {
		cfg.LogDir = filepath.Join(t.TempDir(), "log")
	}
	p, err := NewLocalProcesses(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

// next waits for the provider's next event.
func next(t *testing.T, p Provider, pending *[]Event) Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for len(*pending) == 0 {
		select {
		case <-p.Ready():
			*pending = append(*pending, p.Events()...)
		case <-deadline:
			t.Fatal("no event within 20s")
		}
	}
	e := (*pending)[0]
	*pending = (*pending)[1:]
	return e
}

// alive says whether a process with this pid exists and is not a zombie
// (a zombie has exited; it only waits for its parent to reap it).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// requireGone waits a little for a process to disappear: one killed by a
// signal to its group may take a moment to be reaped by its new parent.
func requireGone(t *testing.T, pid int) {
	t.Helper()
	require.Eventually(t, func() bool { return !alive(pid) }, 10*time.Second, 10*time.Millisecond, "pid %d still running", pid)
}

func waitForLog(t *testing.T, path, s string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(readLog(path), s) }, 10*time.Second, 10*time.Millisecond, "%q not in %s", s, path)
}

// readLog returns a worker's log ("" if it cannot be read: it is polled
// from require.Eventually's goroutine, where a test must not fail).
func readLog(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestLocalStartReleaseClose: workers run the command template with their
// id and slots, write their output to their log file, stop on Release
// (SIGTERM: the helper exits cleanly) and on Close, and leave no process.
func TestLocalStartReleaseClose(t *testing.T) {
	p := newLocal(t, "serve", LocalConfig{IDPrefix: "tm-"})
	ids, err := p.Request(context.Background(), 2, 3)
	require.NoError(t, err)
	require.Equal(t, []WorkerID{"tm-1", "tm-2"}, ids)

	var pending []Event
	started := map[WorkerID]WorkerStarted{}
	for range 2 {
		e := next(t, p, &pending).(WorkerStarted)
		require.Equal(t, 1, e.Start)
		started[e.Worker] = e
	}
	for _, id := range ids {
		e := started[id]
		require.True(t, alive(e.PID))
		require.Equal(t, filepath.Join(p.cfg.LogDir, string(id)+".log"), e.Log)
		waitForLog(t, e.Log, "helper stderr line")
		log := readLog(e.Log)
		require.Contains(t, log, fmt.Sprintf("helper serve args=[worker %s 3] worker=%s pid=%d", id, id, e.PID))
		require.Contains(t, log, "=== strom: ")
	}

	require.NoError(t, p.Release(context.Background(), "tm-1"))
	require.NoError(t, p.Release(context.Background(), "tm-1"), "releasing twice is no error")
	require.Equal(t, WorkerStopped{Worker: "tm-1"}, next(t, p, &pending))
	requireGone(t, started["tm-1"].PID)
	// The worker got SIGTERM and ended by itself.
	waitForLog(t, started["tm-1"].Log, "helper terminated")
	require.ErrorIs(t, p.Release(context.Background(), "tm-1"), ErrUnknownWorker, "a stopped worker is forgotten")
	require.True(t, alive(started["tm-2"].PID), "the other worker runs on")

	require.NoError(t, p.Close())
	require.False(t, alive(started["tm-2"].PID), "Close returns when the processes are gone")
	require.Equal(t, WorkerStopped{Worker: "tm-2"}, next(t, p, &pending))
	require.Empty(t, p.Events())

	_, err = p.Request(context.Background(), 1, 1)
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, p.Close(), "Close twice")
}

// TestLocalRestartsKilledWorker: a worker SIGKILLed from outside is
// reported failed and started again (same id, new process, Start 2), as
// Kubernetes restarts a pod's container; its log keeps both runs.
func TestLocalRestartsKilledWorker(t *testing.T) {
	p := newLocal(t, "serve", LocalConfig{RestartDelay: 50 * time.Millisecond})
	ids, err := p.Request(context.Background(), 1, 2)
	require.NoError(t, err)
	var pending []Event
	first := next(t, p, &pending).(WorkerStarted)
	require.Equal(t, ids[0], first.Worker)

	for i := 2; i <= 3; i++ {
		prev := first
		// Killed once it runs its code, so each run leaves its line.
		waitForLog(t, prev.Log, fmt.Sprintf("pid=%d", prev.PID))
		require.NoError(t, syscall.Kill(prev.PID, syscall.SIGKILL))
		failed := next(t, p, &pending).(WorkerFailed)
		require.Equal(t, prev.Worker, failed.Worker)
		require.Equal(t, prev.PID, failed.PID)
		require.ErrorContains(t, failed.Err, "killed")
		require.Greater(t, failed.RestartIn, time.Duration(0))
		requireGone(t, prev.PID)

		first = next(t, p, &pending).(WorkerStarted)
		require.Equal(t, prev.Worker, first.Worker)
		require.Equal(t, i, first.Start)
		require.NotEqual(t, prev.PID, first.PID)
		require.True(t, alive(first.PID))
	}
	require.Eventually(t, func() bool {
		return strings.Count(readLog(first.Log), "helper serve args=") == 3
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 3, strings.Count(readLog(first.Log), "=== strom: "))

	require.NoError(t, p.Close())
	requireGone(t, first.PID)
	require.Equal(t, WorkerStopped{Worker: first.Worker}, next(t, p, &pending))
}

// TestLocalCrashLoopBacksOff: a worker that exits at once is started again
// with doubling delays up to the maximum; Close during a delay stops it
// without starting it again.
func TestLocalCrashLoopBacksOff(t *testing.T) {
	p := newLocal(t, "crash", LocalConfig{RestartDelay: 10 * time.Millisecond, MaxRestartDelay: 40 * time.Millisecond, StableAfter: time.Hour})
	_, err := p.Request(context.Background(), 1, 1)
	require.NoError(t, err)
	var pending []Event
	var delays []time.Duration
	for len(delays) < 5 {
		switch e := next(t, p, &pending).(type) {
		case WorkerStarted:
			require.Equal(t, len(delays)+1, e.Start)
		case WorkerFailed:
			require.ErrorContains(t, e.Err, "exit status 3")
			delays = append(delays, e.RestartIn)
		default:
			t.Fatalf("unexpected %v", e)
		}
	}
	require.Equal(t, []time.Duration{10, 20, 40, 40, 40}, scale(delays, time.Millisecond))
	require.NoError(t, p.Close())
	for {
		e := next(t, p, &pending)
		if e == (WorkerStopped{Worker: "taskmanager-1"}) {
			break
		}
	}
	require.Empty(t, p.Events(), "nothing after WorkerStopped")
}

func scale(ds []time.Duration, unit time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d / unit
	}
	return out
}

func TestBackoff(t *testing.T) {
	cfg := LocalConfig{RestartDelay: time.Second, MaxRestartDelay: 5 * time.Second, StableAfter: 10 * time.Second}
	var b backoff
	var got []time.Duration
	for _, ran := range []time.Duration{time.Second, 0, 2 * time.Second, 9 * time.Second, 0, 10 * time.Second, time.Second} {
		got = append(got, b.next(ran, cfg))
	}
	// Doubling while the runs are short, capped at 5 s; a run of
	// StableAfter resets it.
	require.Equal(t, []time.Duration{1, 2, 4, 5, 5, 1, 2}, scale(got, time.Second))
}

// TestLocalKillsStubbornWorker: a worker that ignores SIGTERM is killed
// after the grace period.
func TestLocalKillsStubbornWorker(t *testing.T) {
	p := newLocal(t, "stubborn", LocalConfig{StopGrace: 300 * time.Millisecond})
	_, err := p.Request(context.Background(), 1, 1)
	require.NoError(t, err)
	var pending []Event
	e := next(t, p, &pending).(WorkerStarted)
	waitForLog(t, e.Log, fmt.Sprintf("pid=%d ignores SIGTERM", e.PID))
	begin := time.Now()
	require.NoError(t, p.Close())
	require.GreaterOrEqual(t, time.Since(begin), 300*time.Millisecond, "SIGTERM was ignored, so Close waited for the grace period")
	require.False(t, alive(e.PID))
	require.NotContains(t, readLog(e.Log), "helper terminated")
}

var grandchildRE = regexp.MustCompile(`grandchild pid=(\d+)`)

func grandchild(t *testing.T, log string) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		m := grandchildRE.FindStringSubmatch(readLog(log))
		if m == nil {
			return false
		}
		pid, _ = strconv.Atoi(m[1])
		return true
	}, 10*time.Second, 10*time.Millisecond)
	return pid
}

// TestLocalKillsTheWholeProcessGroup: the processes a TaskManager started
// (job workers) go with it — when it is stopped, and when it crashes and
// is restarted — even if they ignore SIGTERM and outlive their parent.
func TestLocalKillsTheWholeProcessGroup(t *testing.T) {
	p := newLocal(t, "spawn", LocalConfig{RestartDelay: 20 * time.Millisecond, StopGrace: 5 * time.Second})
	_, err := p.Request(context.Background(), 1, 1)
	require.NoError(t, err)
	var pending []Event
	e := next(t, p, &pending).(WorkerStarted)
	gc := grandchild(t, e.Log)
	require.True(t, alive(gc))
	waitForLog(t, e.Log, fmt.Sprintf("pid=%d ignores SIGTERM", gc))

	// The TaskManager crashes: its job worker must not survive it.
	require.NoError(t, syscall.Kill(e.PID, syscall.SIGKILL))
	require.IsType(t, WorkerFailed{}, next(t, p, &pending))
	requireGone(t, gc)

	e2 := next(t, p, &pending).(WorkerStarted)
	require.Equal(t, 2, e2.Start)
	var gc2 int
	require.Eventually(t, func() bool {
		all := grandchildRE.FindAllStringSubmatch(readLog(e2.Log), -1)
		if len(all) < 2 {
			return false
		}
		gc2, _ = strconv.Atoi(all[1][1])
		return true
	}, 10*time.Second, 10*time.Millisecond)
	require.True(t, alive(gc2))
	waitForLog(t, e2.Log, fmt.Sprintf("pid=%d ignores SIGTERM", gc2))

	// Stopped: the TaskManager ends on SIGTERM at once; its stubborn job
	// worker is killed without waiting for the grace period.
	begin := time.Now()
	require.NoError(t, p.Close())
	require.Less(t, time.Since(begin), 4*time.Second)
	require.False(t, alive(e2.PID))
	requireGone(t, gc2)
}

func TestLocalConfigErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := NewLocalProcesses(LocalConfig{LogDir: dir})
	require.ErrorContains(t, err, "no command")
	_, err = NewLocalProcesses(LocalConfig{Command: []string{"/nonexistent/strom"}, LogDir: dir})
	require.Error(t, err)
	_, err = NewLocalProcesses(LocalConfig{Command: []string{"true"}})
	require.ErrorContains(t, err, "no log directory")
	_, err = NewLocalProcesses(LocalConfig{Command: []string{"true"}, LogDir: dir, RestartDelay: time.Minute, MaxRestartDelay: time.Second})
	require.ErrorContains(t, err, "max restart delay")

	p := newLocal(t, "serve", LocalConfig{})
	_, err = p.Request(context.Background(), 1, 0)
	require.Error(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ids, err := p.Request(ctx, 1, 1)
	require.ErrorIs(t, err, context.Canceled)
	require.Empty(t, ids)
	require.ErrorIs(t, p.Release(context.Background(), "taskmanager-9"), ErrUnknownWorker)
}

// TestLocalStartFailureBacksOff: a worker whose binary disappears cannot
// be started again; that counts as a crash and backs off, and Close still
// ends it.
func TestLocalStartFailureBacksOff(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "tm")
	require.NoError(t, os.Link(exe, bin))
	p, err := NewLocalProcesses(LocalConfig{
		Command: []string{bin, "worker"}, Env: []string{helperEnv + "=serve", fmt.Sprintf("%s=%d", runEnv, os.Getpid())}, LogDir: t.TempDir(),
		RestartDelay: 10 * time.Millisecond, MaxRestartDelay: 20 * time.Millisecond,
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()
	_, err = p.Request(context.Background(), 1, 1)
	require.NoError(t, err)
	var pending []Event
	e := next(t, p, &pending).(WorkerStarted)
	require.NoError(t, os.Remove(bin))
	require.NoError(t, syscall.Kill(e.PID, syscall.SIGKILL))
	require.Equal(t, e.PID, next(t, p, &pending).(WorkerFailed).PID)
	for range 2 {
		f := next(t, p, &pending).(WorkerFailed)
		require.Zero(t, f.PID, "nothing started")
		require.ErrorIs(t, f.Err, os.ErrNotExist)
	}
}

func TestStandalone(t *testing.T) {
	var p Provider = Standalone{}
	ids, err := p.Request(context.Background(), 3, 4)
	require.NoError(t, err)
	require.Empty(t, ids)
	require.ErrorIs(t, p.Release(context.Background(), "tm-1"), ErrUnknownWorker)
	require.Nil(t, p.Ready())
	require.Empty(t, p.Events())
	require.NoError(t, p.Close())
}

// TestLocalConcurrentUse: requests, releases and Close from several
// goroutines at once (under -race): every worker that started is stopped
// exactly once, its process gone, and requests after Close are refused.
func TestLocalConcurrentUse(t *testing.T) {
	p := newLocal(t, "serve", LocalConfig{StopGrace: 5 * time.Second})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			// Not require: these goroutines must not call t.FailNow.
			ids, err := p.Request(context.Background(), 1, 1)
			if err != nil {
				if !errors.Is(err, ErrClosed) {
					t.Errorf("request: %v", err)
				}
				return
			}
			// Release may come after Close stopped the worker.
			if err := p.Release(context.Background(), ids[0]); err != nil && !errors.Is(err, ErrUnknownWorker) {
				t.Errorf("release: %v", err)
			}
		})
	}
	wg.Go(func() {
		time.Sleep(5 * time.Millisecond)
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	wg.Wait()
	require.NoError(t, p.Close())

	var pids []int
	stopped := map[WorkerID]int{}
	for _, e := range p.Events() {
		switch e := e.(type) {
		case WorkerStarted:
			pids = append(pids, e.PID)
			stopped[e.Worker] += 0
		case WorkerStopped:
			stopped[e.Worker]++
		default:
			t.Fatalf("unexpected %v", e)
		}
	}
	for w, n := range stopped {
		require.Equal(t, 1, n, "worker %s stopped %d times", w, n)
	}
	for _, pid := range pids {
		require.False(t, alive(pid), "pid %d", pid)
	}
	_, err := p.Request(context.Background(), 1, 1)
	require.ErrorIs(t, err, ErrClosed)
}
