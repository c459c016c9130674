// Package chaos fails running tasks on purpose, to exercise recovery:
// `strom nexmark --fail-every` and the recovery-time benchmark use it.
//
// A failure is a panic on the task's own goroutine, delivered through the
// task's mailbox (runtime.Task.Mail), so the task dies exactly as it would
// from a user function's panic: its Run recovers the panic into a
// TaskError, the TaskManager reports the task FAILED and the JobMaster's
// restart strategy restarts the job from its latest completed checkpoint.
//
// The hook that hands tasks to an Injector travels in the context given to
// strom's Execute / ExecuteAsync (WithTaskHook), so chaos testing needs no
// public API of package strom: only code inside the module can import this
// package.
package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strom-dev/strom/internal/runtime"
)

type hookKey struct{}

// WithTaskHook returns a context that makes strom's Execute and
// ExecuteAsync hand hook every task they build, before it runs (on the
// goroutine that deploys it: hook must not block).
func WithTaskHook(ctx context.Context, hook func(*runtime.Task)) context.Context {
	return context.WithValue(ctx, hookKey{}, hook)
}

// TaskHook is the hook WithTaskHook put in ctx, or nil.
func TaskHook(ctx context.Context) func(*runtime.Task) {
	h, _ := ctx.Value(hookKey{}).(func(*runtime.Task))
	return h
}

// ErrInjected is wrapped by the panic value of every injected failure, so
// a job's error says it was chaos, not a bug.
var ErrInjected = errors.New("chaos: injected failure")

// Injector fails a task chosen at random among the newest attempt's
// tasks, on demand (FailOne) or every period (Start). The choice is drawn
// from a seeded generator over the tasks sorted by vertex and subtask, so
// a seed repeats the same choices for the same set of tasks (what set is
// deployed when a failure is due still depends on timing).
type Injector struct {
	seed   uint64
	logger *slog.Logger

	mu  sync.Mutex
	rng *rand.Rand
	// tasks are the tasks of attempt newest, as built; a task that has
	// stopped is dropped when Mail says so.
	tasks  []*runtime.Task
	newest int

	injected atomic.Int64
}

// NewInjector returns an injector whose choices are drawn from seed.
// logger (nil: slog.Default) gets one line per injected failure.
func NewInjector(seed uint64, logger *slog.Logger) *Injector {
	if logger == nil {
		logger = slog.Default()
	}
	return &Injector{seed: seed, logger: logger, rng: rand.New(rand.NewPCG(seed, 0xc4a05))}
}

// Seed is the seed the injector draws its choices from.
func (in *Injector) Seed() uint64 { return in.seed }

// Injected counts the failures delivered so far (mailed to a task that
// had not stopped).
func (in *Injector) Injected() int64 { return in.injected.Load() }

// Hook is the task hook (see WithTaskHook): it registers every task built.
// A task of a newer attempt than those known replaces them all: only the
// newest attempt's tasks are candidates, so one failure is not spent on a
// task that is being cancelled anyway.
func (in *Injector) Hook(t *runtime.Task) {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch a := t.Info.Attempt; {
	case a > in.newest:
		in.newest = a
		clear(in.tasks)
		in.tasks = append(in.tasks[:0], t)
	case a == in.newest:
		in.tasks = append(in.tasks, t)
	}
}

// FailOne mails a panic to a task of the newest attempt chosen at random
// and returns which, or false if no task of it takes mail any more (none
// deployed, or all stopped). The panic happens when the task next runs its
// mail: between two batches, or as soon as it starts if it has not yet.
func (in *Injector) FailOne() (runtime.TaskInfo, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	// Sorted so that the seed alone picks the task, whatever order the
	// TaskManager built them in.
	slices.SortFunc(in.tasks, func(a, b *runtime.Task) int {
		return cmp.Or(cmp.Compare(a.Info.VertexName, b.Info.VertexName), cmp.Compare(a.Info.Subtask, b.Info.Subtask))
	})
	for len(in.tasks) > 0 {
		i := in.rng.IntN(len(in.tasks))
		t := in.tasks[i]
		n := in.injected.Load() + 1
		msg := fmt.Errorf("%w %d (seed %d) in %s, attempt %d", ErrInjected, n, in.seed, t.Info, t.Info.Attempt)
		if err := t.Mail(context.Background(), func() { panic(msg) }); err != nil {
			// Stopped (finished, or cancelled by a failure): not a
			// candidate any more.
			in.tasks = slices.Delete(in.tasks, i, i+1)
			continue
		}
		in.injected.Add(1)
		in.logger.Info("chaos: failing a task", "task", t.Info.String(), "attempt", t.Info.Attempt, "failure", n, "seed", in.seed)
		return t.Info, true
	}
	return runtime.TaskInfo{}, false
}

// Start fails one task every period until stop is called or ctx ends;
// stop waits for the injector's goroutine, so none outlives it. A period
// in which no task takes mail injects nothing.
func (in *Injector) Start(ctx context.Context, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				in.FailOne()
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
