package fdpass_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/fdpass"
)

// helperEnv marks the test binary re-executed as a job worker.
const helperEnv = "STROM_FDPASS_HELPER_CHILD"

// TestHelperChild is the job worker of the real-process tests, not a test
// of its own: in a normal run it returns at once. As a worker it takes its
// end of the pair from fd 3 (ExtraFiles[0]), says hello with its pid,
// echoes every connection in upper case, and passes only if its accept
// loop ends because the TaskManager's end closed.
func TestHelperChild(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	l, err := fdpass.Listen(os.NewFile(3, "fdpass-child"), "tm-data:6121")
	require.NoError(t, err)
	defer l.Close()
	require.Equal(t, "tm-data:6121", l.Addr().String())
	require.NoError(t, l.Hello("worker-rpc:"+strconv.Itoa(os.Getpid())))
	require.ErrorIs(t, upperEcho(l, "child"), fdpass.ErrParentGone)
	select {
	case <-l.Gone():
	default:
		t.Fatal("Gone not closed with ErrParentGone")
	}
}

// worker is a running child process with its pair's parent end.
type worker struct {
	cmd    *exec.Cmd
	sender *fdpass.Sender
	log    string        // the worker's stdout and stderr
	exited chan struct{} // closed when Wait returned
	err    error         // Wait's, once exited is closed
}

// startWorker re-executes the test binary as a worker (TestHelperChild)
// with the pair's child end as its fd 3, and waits for its hello.
func startWorker(t *testing.T) *worker {
	t.Helper()
	s, child, err := fdpass.Pair()
	require.NoError(t, err)
	w := &worker{sender: s, log: filepath.Join(t.TempDir(), "worker.log"), exited: make(chan struct{})}
	// A file, not a buffer: the worker writes it directly, with no copier
	// goroutine in this process to synchronise with.
	out, err := os.Create(w.log)
	require.NoError(t, err)
	defer out.Close()
	w.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperChild$", "-test.count=1", "-test.v")
	// atexit_sleep_ms: a race-enabled binary otherwise idles a second
	// before it exits.
	w.cmd.Env = append(os.Environ(), helperEnv+"=1", "GORACE=atexit_sleep_ms=0")
	w.cmd.ExtraFiles = []*os.File{child}
	w.cmd.Stdout, w.cmd.Stderr = out, out
	err = w.cmd.Start()
	// The parent must not keep the child's end, or the worker's death
	// would go unnoticed on the Sender.
	require.NoError(t, child.Close())
	require.NoError(t, err)
	go func() { w.err = w.cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() {
		_ = w.cmd.Process.Kill()
		<-w.exited
		_ = s.Close()
	})
	hello, err := s.ReadHello(60 * time.Second) // a race-enabled binary starts slowly on a busy machine
	require.NoError(t, err, "worker output:\n%s", w.output())
	require.Equal(t, fmt.Sprintf("worker-rpc:%d", w.cmd.Process.Pid), hello)
	return w
}

// output is what the worker printed so far.
func (w *worker) output() string {
	b, err := os.ReadFile(w.log)
	if err != nil {
		return fmt.Sprintf("(reading worker log: %v)", err)
	}
	return string(b)
}

func (w *worker) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-w.exited:
		return w.err
	case <-time.After(60 * time.Second):
		t.Fatalf("worker did not exit; output:\n%s", w.output())
		return nil
	}
}

// A real worker process receives three connections through the
// TaskManager's port and serves them; once it is killed, Send fails at
// once instead of hanging, and clients of the dead worker see their
// connection closed.
func TestRealChildProcess(t *testing.T) {
	w := startWorker(t)
	tm := startTaskManager(t, map[string]*fdpass.Sender{"job-x": w.sender})

	var wg sync.WaitGroup
	replies, errs := make([]string, 3), make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i], errs[i] = exchange(tm.addr(), "job-x", fmt.Sprintf("message %d", i))
		}()
	}
	wg.Wait()
	for i := range 3 {
		require.NoError(t, errs[i], "worker output:\n%s", w.output())
		require.Equal(t, fmt.Sprintf("child:MESSAGE %d", i), replies[i])
	}

	require.NoError(t, w.cmd.Process.Kill())
	require.Error(t, w.wait(t), "killed")

	client, server := tcpPair(t)
	defer client.Close()
	start := time.Now()
	err := w.sender.Send(server)
	require.Error(t, err, "Send to a dead worker must fail")
	require.Less(t, time.Since(start), 5*time.Second)
	requireEOF(t, client)
	require.Error(t, w.sender.Send(server), "and keeps failing")
}

// A real worker's Accept returns ErrParentGone when the TaskManager's end
// closes, and the worker then exits cleanly by itself.
func TestRealChildExitsWhenParentGone(t *testing.T) {
	w := startWorker(t)
	require.NoError(t, w.sender.Close())
	err := w.wait(t)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("worker failed (%v); output:\n%s", err, w.output())
	}
	require.NoError(t, err)
	require.Contains(t, w.output(), "--- PASS: TestHelperChild", "the worker's checks ran")
}
