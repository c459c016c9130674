// Package jobworker runs a job's tasks in a child process of the job's
// binary (the job worker), for a TaskManager of a cluster that runs job
// binaries: the process isolation Flink's session clusters lack (one
// JVM for every job: a leak or a crash in one job is every job's).
//
// The parent side is Launcher (taskmanager.Workers): it fetches the
// binary from the JobManager's blob server into a cache (checked against
// its sha256 id), starts it with the job's program arguments and
// Env set, and gives it one end of a unix socket pair (fd 3). The child
// runs the program's main, whose Execute sees Env and calls Serve: it
// builds the same graph, starts a TaskManager of its own
// (taskmanager.Config.JobWorker) on a loopback RPC address, tells the
// parent that address over the socket, and serves the tasks the parent
// routes to it. Data streams from other TaskManagers arrive at the
// parent's one data port, name their job in a preamble, and are handed
// to the job's worker over the socket (internal/fdpass): by default as
// one end of a socket pair the parent relays to a stream of its one
// multiplexed connection per peer (internal/datamux), in direct mode
// as the accepted socket itself. The child dies with its parent
// (Pdeathsig, and the socket's end) and the parent fails the child's
// tasks when it exits (taskmanager/host.go).
package jobworker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/strom-dev/strom/internal/fdpass"
	"github.com/strom-dev/strom/internal/taskmanager"
)

// Env is the environment variable that puts a job binary in worker mode;
// its value is the JSON of a spec.
const Env = "STROM_JOB_WORKER"

// spec is what a worker is told by its parent.
type spec struct {
	JobID       string `json:"job_id"`
	TaskManager string `json:"task_manager"`
	// DataAddress is the parent's data address: what placements name.
	DataAddress string `json:"data_address"`
	// DataSocket is the parent's unix socket for streams to peers
	// (internal/datamux); empty: the worker dials peers directly.
	DataSocket string `json:"data_socket,omitempty"`
}

// LauncherConfig configures a Launcher.
type LauncherConfig struct {
	TaskManager string // the TaskManager's id
	DataAddress string // its advertised data address
	// DataSocket is the unix socket on which the TaskManager opens
	// multiplexed streams to peers for its workers (datamux.Mux.ServeWorkers);
	// empty: workers dial peers' data ports directly.
	DataSocket string
	// Dir keeps fetched binaries (binaries/) and the workers' output
	// (workers/<job>-<n>.log).
	Dir string
	// Fetch writes binary id's content to w (from the JobManager's blob
	// server); the Launcher checks the hash.
	Fetch func(ctx context.Context, id string, w io.Writer) error
	// StartTimeout bounds a worker's start, from exec to its hello
	// (default 60 s: a job's main may do work before Execute).
	StartTimeout time.Duration
	// StopGrace is how long a stopped worker may take to exit before it
	// is killed (default 5 s).
	StopGrace time.Duration
	// HandoffTimeout is how long a data connection for a job whose
	// worker is not started yet waits for it (default 30 s).
	HandoffTimeout time.Duration
	Logger         *slog.Logger
}

// Launcher starts job workers; it implements taskmanager.Workers.
type Launcher struct {
	cfg LauncherConfig

	fetchMu sync.Mutex // one fetch at a time: the same binary is fetched once

	mu      sync.Mutex
	workers map[string]*worker // the newest worker of each job
	changed chan struct{}      // closed and replaced when workers changes
	starts  int
	closed  bool
}

var _ taskmanager.Workers = (*Launcher)(nil)

// NewLauncher returns a Launcher.
func NewLauncher(cfg LauncherConfig) (*Launcher, error) {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 5 * time.Second
	}
	if cfg.HandoffTimeout <= 0 {
		cfg.HandoffTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, d := range []string{"binaries", "workers"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("job workers: %w", err)
		}
	}
	return &Launcher{cfg: cfg, workers: map[string]*worker{}, changed: make(chan struct{})}, nil
}

// worker is one job worker process.
type worker struct {
	job    string
	addr   string
	cmd    *exec.Cmd
	sender *fdpass.Sender
	log    *tail
	done   chan struct{}
	err    error // set before done closes
	stop   sync.Once
	grace  time.Duration
}

func (w *worker) Address() string       { return w.addr }
func (w *worker) Done() <-chan struct{} { return w.done }
func (w *worker) Err() error            { return w.err }

// Stop closes the worker's socket, on which it shuts down, and kills its
// process group if it is still there after the grace period.
func (w *worker) Stop() {
	w.stop.Do(func() {
		_ = w.sender.Close()
		go func() {
			select {
			case <-w.done:
			case <-time.After(w.grace):
				_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
			}
		}()
	})
}

// Start implements taskmanager.Workers.
func (l *Launcher) Start(ctx context.Context, job, binary string, args []string) (taskmanager.Worker, error) {
	path, err := l.binary(ctx, binary)
	if err != nil {
		return nil, err
	}
	sender, child, err := fdpass.Pair()
	if err != nil {
		return nil, fmt.Errorf("job worker of %s: %w", job, err)
	}
	sp, _ := json.Marshal(spec{JobID: job, TaskManager: l.cfg.TaskManager, DataAddress: l.cfg.DataAddress, DataSocket: l.cfg.DataSocket})
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = sender.Close()
		_ = child.Close()
		return nil, errors.New("job workers: launcher closed")
	}
	l.starts++
	n := l.starts
	l.mu.Unlock()
	logPath := filepath.Join(l.cfg.Dir, "workers", fmt.Sprintf("%s-%d.log", job, n))
	logFile, err := os.Create(logPath)
	if err != nil {
		_ = sender.Close()
		_ = child.Close()
		return nil, fmt.Errorf("job worker of %s: %w", job, err)
	}
	t := &tail{max: 4 << 10}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), Env+"="+string(sp))
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stdout = logFile
	cmd.Stderr = io.MultiWriter(logFile, t)
	// Its own process group (stopped as one), and killed by the kernel
	// when this process dies, even by SIGKILL: no orphaned worker runs
	// stale tasks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	_ = child.Close()
	if err != nil {
		_ = sender.Close()
		_ = logFile.Close()
		return nil, fmt.Errorf("job worker of %s: starting %s: %w", job, path, err)
	}
	w := &worker{job: job, cmd: cmd, sender: sender, log: t, done: make(chan struct{}), grace: l.cfg.StopGrace}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		_ = logFile.Close()
		if err == nil {
			err = errors.New("exit status 0")
		}
		if s := strings.TrimSpace(t.String()); s != "" {
			err = fmt.Errorf("%w; its output ended with:\n%s", err, s)
		}
		w.err = err
		close(exited)
		_ = sender.Close()
		l.mu.Lock()
		if l.workers[job] == w {
			delete(l.workers, job)
			l.signalLocked()
		}
		l.mu.Unlock()
		close(w.done)
	}()
	type hello struct {
		addr string
		err  error
	}
	got := make(chan hello, 1)
	go func() {
		a, err := sender.ReadHello(l.cfg.StartTimeout)
		got <- hello{a, err}
	}()
	var h hello
	select {
	case h = <-got:
	case <-ctx.Done():
		h.err = ctx.Err()
	}
	if h.err != nil {
		w.Stop()
		<-w.done
		return nil, fmt.Errorf("job worker of %s (%s, log %s) did not start: %w (process: %w)", job, path, logPath, h.err, w.err)
	}
	w.addr = h.addr
	l.mu.Lock()
	l.workers[job] = w
	l.signalLocked()
	l.mu.Unlock()
	l.cfg.Logger.Info("job worker started", "job_id", job, "pid", cmd.Process.Pid, "address", w.addr, "log", logPath)
	return w, nil
}

func (l *Launcher) signalLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// HandConn hands a data connection for job, its preamble read, to the
// job's worker, waiting for the worker to start if it has not yet (the
// producer's deploy may come after the consumer's). It closes c.
func (l *Launcher) HandConn(job string, c net.Conn) error {
	defer c.Close()
	deadline := time.NewTimer(l.cfg.HandoffTimeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		w, closed, changed := l.workers[job], l.closed, l.changed
		l.mu.Unlock()
		if closed {
			return errors.New("job workers: launcher closed")
		}
		if w != nil {
			if err := w.sender.Send(c); err != nil {
				return fmt.Errorf("handing a data connection to the worker of job %s: %w", job, err)
			}
			return nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return fmt.Errorf("no worker of job %s here after %v", job, l.cfg.HandoffTimeout)
		}
	}
}

// Close stops every worker and waits for them.
func (l *Launcher) Close() {
	l.mu.Lock()
	l.closed = true
	ws := make([]*worker, 0, len(l.workers))
	for _, w := range l.workers {
		ws = append(ws, w)
	}
	l.signalLocked()
	l.mu.Unlock()
	for _, w := range ws {
		w.Stop()
	}
	for _, w := range ws {
		<-w.done
	}
}

// binary returns the path of an executable copy of binary id: this
// process's own executable when it is that binary (application mode, or
// `strom nexmark --cluster`, whose job binary is strom), else the cached
// copy, fetched first if need be.
func (l *Launcher) binary(ctx context.Context, id string) (string, error) {
	if !validID(id) {
		return "", fmt.Errorf("job binary id %q is not a sha256 in hex", id)
	}
	if self, h := selfHash(); h == id {
		return self, nil
	}
	l.fetchMu.Lock()
	defer l.fetchMu.Unlock()
	path := filepath.Join(l.cfg.Dir, "binaries", id)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), id+".part-*")
	if err != nil {
		return "", fmt.Errorf("fetching job binary %s: %w", id, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	h := sha256.New()
	err = l.cfg.Fetch(ctx, id, io.MultiWriter(tmp, h))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("fetching job binary %s: %w", id, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != id {
		return "", fmt.Errorf("fetching job binary %s: the content's sha256 is %s: refused", id, got)
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", fmt.Errorf("fetching job binary %s: %w", id, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("fetching job binary %s: %w", id, err)
	}
	return path, nil
}

func validID(id string) bool {
	if len(id) != 64 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

var selfHash = sync.OnceValues(func() (string, string) {
	exe, err := os.Executable()
	if err != nil {
		return "", ""
	}
	f, err := os.Open(exe)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", ""
	}
	return exe, hex.EncodeToString(h.Sum(nil))
})

// tail keeps the last max bytes written to it (a worker's stderr, for
// the failure its tasks report).
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
		if i := bytes.IndexByte(t.buf, '\n'); i >= 0 && i < len(t.buf)-1 {
			t.buf = t.buf[i+1:]
		}
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
