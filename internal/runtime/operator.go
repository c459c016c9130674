// Package runtime executes the operators of one task: the mailbox loop, the
// chain of operators called directly, the inputs that read typed batches from
// network channels, the writers that partition records onto them, watermarks,
// timers and per-operator counters.
//
// Everything in a task runs on the task's one goroutine, so operators and user
// functions never need locks. An operator fails the task by panicking with an
// error (see Fail); the task recovers it and reports the failure with the job,
// operator and subtask named.
package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/network"
)

// NoTimestamp marks a record that carries no event time.
const NoTimestamp = network.NoTimestamp

// MaxWatermark ends event time.
const MaxWatermark = network.MaxWatermark

// MinWatermark is the watermark before any has been seen.
const MinWatermark = network.NoTimestamp

// Output receives what an operator emits: records with their timestamps and
// watermarks. Chained operators are Outputs of their predecessor.
type Output[T any] interface {
	Collect(v T, ts int64)
	EmitWatermark(wm int64)
	// MarkIdle says the stream will not advance event time until it emits a
	// record or a watermark again.
	MarkIdle()
}

// Operator is the life cycle every operator has.
type Operator interface {
	// Open prepares the operator before the first element.
	Open(ctx *Context) error
	// Finish is called once all input has ended (after the final watermark):
	// the operator emits what it still buffers. Not called on cancellation.
	Finish() error
	// Close releases resources. Always called, also after failures.
	Close() error
}

// OneInput is an operator with one logical input (which may be the union of
// several streams).
type OneInput[T any] interface {
	Operator
	ProcessElement(v T, ts int64)
	ProcessWatermark(wm int64)
	// ProcessIdle is called when the input becomes idle.
	ProcessIdle()
}

// TwoInput is an operator with two inputs of different types (Connect).
type TwoInput[A, B any] interface {
	Operator
	ProcessElement1(v A, ts int64)
	ProcessElement2(v B, ts int64)
	// ProcessWatermark receives the minimum of both inputs' watermarks.
	ProcessWatermark(wm int64)
	ProcessIdle()
}

// TaskInfo names a subtask.
type TaskInfo struct {
	JobName        string
	JobID          string
	VertexName     string
	Subtask        int // 0-based
	Parallelism    int
	MaxParallelism int
	Attempt        int
}

func (t TaskInfo) String() string {
	return fmt.Sprintf("%s (%d/%d)", t.VertexName, t.Subtask+1, t.Parallelism)
}

// Context is what an operator sees of its task.
type Context struct {
	Ctx          context.Context
	Task         TaskInfo
	OperatorName string
	OperatorUID  string
	// KeyGroups is the key-group range this subtask owns.
	KeyGroups keygroup.Range
	Logger    *slog.Logger
	// Time is the task's processing-time service.
	Time *ProcessingTime
	// Checkpointing says the job takes checkpoints: a two-phase-commit
	// sink then leaves every commit, its end of input's included, to a
	// checkpoint's notification (the final checkpoint, FLIP-147), since
	// a restore replays whatever followed the checkpoint restored.
	Checkpointing bool
	// IncrementalCheckpoints makes checkpoints write keyed state as an
	// incremental chain (keyed_chain.go) instead of whole.
	IncrementalCheckpoints bool
	// chain is the operator's incremental chain; incremental is set for
	// the snapshot being taken when it may be incremental (a checkpoint,
	// not a savepoint).
	chain       *keyedChain
	incremental bool
	// sideOutputs maps a side-output tag to an Output[U] (erased).
	sideOutputs map[string]any
	// state is the operator's part of the state seam (state_seam.go).
	state *operatorState
}

// SideOutput returns the Output for a side-output tag, or nil if no stream
// consumes that tag (then emitting to it is dropped).
func (c *Context) SideOutput(tag string) any { return c.sideOutputs[tag] }

// SideOutputs returns every consumed side output (tag → Output[U], erased),
// for operators that forward watermarks to them. Do not modify the map.
func (c *Context) SideOutputs() map[string]any { return c.sideOutputs }

// TaskError is the error a task fails with: it names the job, the operator
// and the subtask.
type TaskError struct {
	Job      string
	Operator string
	Task     TaskInfo
	Err      error
	// Stack is the goroutine's stack when the failure was a panic (not an
	// error returned or raised with Fail); empty otherwise.
	Stack string
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("job %q: operator %q (subtask %d/%d): %v", e.Job, e.Operator, e.Task.Subtask+1, e.Task.Parallelism, e.Err)
}

func (e *TaskError) Unwrap() error { return e.Err }

// failure is the panic value an operator raises to fail its task.
type failure struct {
	op  string
	err error
}

// Fail aborts the task: the error is reported as the failure of the named
// operator. It never returns.
func Fail(operator string, err error) {
	panic(failure{op: operator, err: err})
}

// canceled is the panic value raised when a blocking operation sees its
// context end.
type canceled struct{}

// Cancelled aborts the task because its context ended.
func Cancelled() { panic(canceled{}) }

// CancelFlag is a task's cancellation flag. The task sets it (with
// context.AfterFunc, no goroutine per task) when its context ends; the task
// goroutine checks it between calls of user code — per record in the input
// processors, chaining outputs and sources, per timer in the timer services
// — so cancellation takes effect within one call of user code however large
// a batch, or however many timers a watermark fires. A check is one atomic
// load.
type CancelFlag struct{ b atomic.Bool }

// Set marks the task cancelled (any goroutine).
func (f *CancelFlag) Set() { f.b.Store(true) }

// IsSet reports whether the task is cancelled.
func (f *CancelFlag) IsSet() bool { return f.b.Load() }

// Check aborts the task as cancelled (see Cancelled) if the flag is set.
func (f *CancelFlag) Check() {
	if f.b.Load() {
		Cancelled()
	}
}

// CancelFlag is the task's cancellation flag, for operators that call user
// code many times per record or watermark.
func (c *Context) CancelFlag() *CancelFlag {
	if c.Time == nil {
		return new(CancelFlag)
	}
	return c.Time.cancel
}

func formatAny(v any) string { return fmt.Sprint(v) }

// SetSideOutputs installs the side outputs (tag → Output[U]) of an operator.
func (c *Context) SetSideOutputs(m map[string]any) { c.sideOutputs = m }
