package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults of LocalConfig.
const (
	DefaultRestartDelay    = time.Second
	DefaultMaxRestartDelay = time.Minute
	DefaultStableAfter     = time.Minute
	DefaultStopGrace       = 10 * time.Second
	DefaultIDPrefix        = "taskmanager-"
)

// LocalConfig configures LocalProcesses. Zero durations mean the defaults.
type LocalConfig struct {
	// Command is a worker's argv. In every element "{id}" is replaced by
	// the worker's id and "{slots}" by its number of slots, e.g.
	// [/proc/self/exe taskmanager --jobmanager 127.0.0.1:6123 --id {id}
	// --slots {slots}]. A Command[0] without a slash is looked up in PATH.
	Command []string
	// Env is added to this process's environment for every worker, which
	// also gets STROM_WORKER_ID=<id>.
	Env []string
	// Dir is the workers' working directory ("": this process's).
	Dir string
	// LogDir gets one file per worker, <id>.log, with its stdout and
	// stderr, appended across restarts (each start begins with a line of
	// this package's). Required: a supervised process's output must go
	// somewhere one can read after it crashed.
	LogDir string
	// IDPrefix starts every worker id; a number follows
	// (default "taskmanager-").
	IDPrefix string
	// RestartDelay is the wait before a worker that exited is started
	// again (default 1 s). While it crash-loops the wait doubles with each
	// exit, up to MaxRestartDelay (default 1 min), and goes back to
	// RestartDelay once a start ran for StableAfter (default 1 min) — as
	// Kubernetes backs off a pod's restarts, with shorter times.
	RestartDelay, MaxRestartDelay, StableAfter time.Duration
	// StopGrace is how long a stopping worker has between SIGTERM and
	// SIGKILL (default 10 s).
	StopGrace time.Duration
	// Logger gets the supervisor's own lines (default slog.Default()).
	Logger *slog.Logger
}

// LocalProcesses is the provider of `strom cluster start`: it runs
// TaskManagers as child processes of this one, each in its own process
// group so that stopping one also stops the job-worker processes it
// started. It supervises each with one goroutine, which restarts a worker
// whose process ended and stops it on Release or Close; Close returns only
// when every process of every worker is gone. The children also get
// SIGKILL if this process dies (Linux's parent-death signal), so even a
// crashed supervisor leaves no TaskManager behind.
type LocalProcesses struct {
	cfg    LocalConfig
	log    *slog.Logger
	events *queue

	mu      sync.Mutex
	closed  bool
	next    int // the number of the last worker id handed out
	workers map[WorkerID]*worker
	wg      sync.WaitGroup // one per supervisor goroutine
}

var _ Provider = (*LocalProcesses)(nil)

// worker is one supervised worker. Its supervisor goroutine owns
// everything but stop, which Release and Close close (once, under
// LocalProcesses.mu).
type worker struct {
	id       WorkerID
	slots    int
	stop     chan struct{}
	stopping bool
}

// NewLocalProcesses checks cfg (the command must exist, the log directory
// is created) and returns a provider with no workers.
func NewLocalProcesses(cfg LocalConfig) (*LocalProcesses, error) {
	if len(cfg.Command) == 0 {
		return nil, errors.New("local processes: no command")
	}
	path, err := exec.LookPath(cfg.Command[0])
	if err != nil {
		return nil, fmt.Errorf("local processes: command: %w", err)
	}
	cfg.Command = append([]string{path}, cfg.Command[1:]...)
	if cfg.LogDir == "" {
		return nil, errors.New("local processes: no log directory")
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("local processes: log directory: %w", err)
	}
	if cfg.RestartDelay < 0 || cfg.MaxRestartDelay < 0 || cfg.StableAfter < 0 || cfg.StopGrace < 0 {
		return nil, errors.New("local processes: negative duration")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.RestartDelay, DefaultRestartDelay)
	def(&cfg.MaxRestartDelay, max(DefaultMaxRestartDelay, cfg.RestartDelay))
	def(&cfg.StableAfter, DefaultStableAfter)
	def(&cfg.StopGrace, DefaultStopGrace)
	if cfg.MaxRestartDelay < cfg.RestartDelay {
		return nil, fmt.Errorf("local processes: max restart delay %v below the restart delay %v", cfg.MaxRestartDelay, cfg.RestartDelay)
	}
	if cfg.IDPrefix == "" {
		cfg.IDPrefix = DefaultIDPrefix
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &LocalProcesses{cfg: cfg, log: log, events: newQueue(), workers: map[WorkerID]*worker{}}, nil
}

// Request starts n workers with slots slots each. A worker whose process
// cannot be started is not kept: its error is returned with the ids of
// the workers started before it. The first process of each worker is
// started from the caller's goroutine, so that goroutine must not be one
// locked to an OS thread that then exits (runtime.LockOSThread): the
// parent-death signal would kill the workers with the thread.
func (p *LocalProcesses) Request(ctx context.Context, n, slots int) ([]WorkerID, error) {
	if n < 0 || slots < 1 {
		return nil, fmt.Errorf("local processes: request %d workers of %d slots", n, slots)
	}
	var ids []WorkerID
	for range n {
		if err := ctx.Err(); err != nil {
			return ids, fmt.Errorf("local processes: request: %w", err)
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return ids, fmt.Errorf("local processes: request: %w", ErrClosed)
		}
		p.next++
		w := &worker{id: WorkerID(p.cfg.IDPrefix + strconv.Itoa(p.next)), slots: slots, stop: make(chan struct{})}
		// Started under the lock so that Close, which takes it, either
		// finds the worker in the map or refuses it: no process escapes.
		cmd, err := p.start(w, 1)
		if err != nil {
			p.mu.Unlock()
			return ids, err
		}
		p.workers[w.id] = w
		p.wg.Add(1)
		p.mu.Unlock()
		go p.supervise(w, cmd)
		ids = append(ids, w.id)
	}
	return ids, nil
}

// Release stops one worker; WorkerStopped follows when it is gone.
func (p *LocalProcesses) Release(_ context.Context, id WorkerID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.workers[id]
	if !ok {
		return fmt.Errorf("local processes: release %s: %w", id, ErrUnknownWorker)
	}
	p.stopLocked(w)
	return nil
}

func (p *LocalProcesses) stopLocked(w *worker) {
	if !w.stopping {
		w.stopping = true
		close(w.stop)
	}
}

// Ready has a value whenever events may be waiting.
func (p *LocalProcesses) Ready() <-chan struct{} { return p.events.ready }

// Events takes the events waiting.
func (p *LocalProcesses) Events() []Event { return p.events.take() }

// Close stops every worker (SIGTERM, SIGKILL after StopGrace, in
// parallel) and returns once all their processes are gone.
func (p *LocalProcesses) Close() error {
	p.mu.Lock()
	p.closed = true
	for _, w := range p.workers {
		p.stopLocked(w)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// start starts one process of w: its start-th.
func (p *LocalProcesses) start(w *worker, start int) (*exec.Cmd, error) {
	argv := make([]string, len(p.cfg.Command))
	for i, a := range p.cfg.Command {
		argv[i] = strings.NewReplacer("{id}", string(w.id), "{slots}", strconv.Itoa(w.slots)).Replace(a)
	}
	logPath := filepath.Join(p.cfg.LogDir, string(w.id)+".log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("local processes: worker %s: log file: %w", w.id, err)
	}
	// The child writes to the file itself (an *os.File needs no copying
	// goroutine), so its output is kept even if this process dies; ours is
	// closed once it has its own descriptor.
	defer logFile.Close()
	fmt.Fprintf(logFile, "=== strom: %s start %d of worker %s: %s\n", time.Now().UTC().Format(time.RFC3339Nano), start, w.id, strings.Join(argv, " "))

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = p.cfg.Dir
	cmd.Env = append(append(os.Environ(), p.cfg.Env...), "STROM_WORKER_ID="+string(w.id))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: signals go to the TaskManager and the
		// job-worker processes it started, together.
		Setpgid: true,
		// Killed if the thread that started it dies. Go does not end its
		// threads (none of this package's goroutines locks one), so in
		// practice: if this process dies.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(logFile, "=== strom: start failed: %v\n", err)
		return nil, fmt.Errorf("local processes: worker %s: start: %w", w.id, err)
	}
	p.log.Info("worker started", "worker", w.id, "pid", cmd.Process.Pid, "start", start, "log", logPath)
	p.events.push(WorkerStarted{Worker: w.id, PID: cmd.Process.Pid, Start: start, Log: logPath})
	return cmd, nil
}

// supervise runs w until it is stopped: it waits for its process, and
// starts it again after a backoff when it exits; on stop it terminates the
// process. It reports WorkerStopped last and then forgets w.
func (p *LocalProcesses) supervise(w *worker, cmd *exec.Cmd) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.workers, w.id)
		p.mu.Unlock()
		p.log.Info("worker stopped", "worker", w.id)
		p.events.push(WorkerStopped{Worker: w.id})
	}()
	var b backoff
	start := 1
	for {
		started := time.Now()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		pid := cmd.Process.Pid
		var err error
		select {
		case err = <-exited:
			killGroup(pid)
			select {
			case <-w.stop:
				// Released as it ended: stopped, not failed.
				return
			default:
			}
		case <-w.stop:
			p.terminate(w, pid, exited)
			return
		}
		if err == nil {
			err = errors.New("exited")
		}
		// Restart until a process starts (or the worker is stopped).
		for {
			delay := b.next(time.Since(started), p.cfg)
			p.log.Warn("worker failed", "worker", w.id, "pid", pid, "err", err, "restart_in", delay)
			p.events.push(WorkerFailed{Worker: w.id, PID: pid, Err: err, RestartIn: delay})
			t := time.NewTimer(delay)
			select {
			case <-w.stop:
				t.Stop()
				return
			case <-t.C:
			}
			start++
			p.mu.Lock()
			// Checked under the lock, as Request does, so that a start
			// never races Close.
			select {
			case <-w.stop:
				p.mu.Unlock()
				return
			default:
			}
			cmd, err = p.start(w, start)
			p.mu.Unlock()
			if err == nil {
				break
			}
			// A start that failed (the binary was removed) is a crash
			// that took no time: it backs off too.
			started, pid = time.Now(), 0
		}
	}
}

// terminate stops w's process group: SIGTERM, then SIGKILL after the
// grace period if its leader has not exited by then. Processes of the
// group still there when the leader is gone (job workers it left) get
// SIGKILL at once.
func (p *LocalProcesses) terminate(w *worker, pid int, exited <-chan error) {
	p.log.Info("stopping worker", "worker", w.id, "pid", pid)
	signalGroup(pid, syscall.SIGTERM)
	t := time.NewTimer(p.cfg.StopGrace)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		p.log.Warn("worker did not stop in time: killing it", "worker", w.id, "pid", pid, "grace", p.cfg.StopGrace)
		signalGroup(pid, syscall.SIGKILL)
		<-exited
	}
	killGroup(pid)
}

// killGroup kills what is left of the process group a worker's process
// led (its leader has exited and was reaped): as Kubernetes ends every
// process of a container whose main process ended.
func killGroup(pgid int) { signalGroup(pgid, syscall.SIGKILL) }

func signalGroup(pgid int, sig syscall.Signal) {
	// ESRCH: nobody is left in the group.
	_ = syscall.Kill(-pgid, sig)
}

// backoff is the restart delay of one worker: RestartDelay after a stable
// run (or the first exit), doubled after each short one, capped.
type backoff struct{ last time.Duration }

func (b *backoff) next(ran time.Duration, cfg LocalConfig) time.Duration {
	if b.last == 0 || ran >= cfg.StableAfter {
		b.last = cfg.RestartDelay
	} else {
		b.last = min(2*b.last, cfg.MaxRestartDelay)
	}
	return b.last
}
