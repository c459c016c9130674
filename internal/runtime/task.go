package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/strom-dev/strom/internal/network"
)

// SourceStatus is what a source step reports.
type SourceStatus uint8

const (
	// More: call Step again.
	More SourceStatus = iota
	// NothingAvailable: nothing to emit until WakeAt or until Avail fires.
	NothingAvailable
	// EndOfInput: the source is exhausted.
	EndOfInput
)

// SourceStep is the result of one step of a source.
type SourceStep struct {
	Status SourceStatus
	WakeAt time.Time       // with NothingAvailable: try again then (zero: only on Avail)
	Avail  <-chan struct{} // with NothingAvailable: fires when data may be there
}

// SourceOperator heads a source task: the task loop calls Step until the
// source ends, running mailbox actions and timers between steps.
type SourceOperator interface {
	Operator
	// Step emits at most about one batch of records into the chain.
	Step() SourceStep
	// EndInput is called when Step reported EndOfInput: the source emits its
	// final watermark.
	EndInput()
}

// ChainedOperator is one operator of a task's chain.
type ChainedOperator struct {
	Name string
	UID  string
	Op   Operator
	Ctx  *Context
	In   *Counter
	Out  *Counter
}

// Task runs one subtask: a chain of operators fed by an input processor (or
// headed by a source), on one goroutine with a mailbox.
type Task struct {
	Info    TaskInfo
	Chain   []ChainedOperator // head first
	Input   InputProcessor    // nil when the head is a SourceOperator
	Writers []Flusher
	Notify  network.Notifier
	Time    *ProcessingTime
	Logger  *slog.Logger
	// OnRunning, when set, is called once on the task goroutine after every
	// operator opened and before the first input is read: the moment the
	// task is RUNNING in Flink's sense (its TaskManager reports it then).
	OnRunning func()
	// Restore holds the chain's operators' state to start from (nil: a
	// fresh start); see state_seam.go.
	Restore TaskRestore
	// ChannelRestore is the channel state of the unaligned checkpoint the
	// task restores from (nil: none), replayed before any new input (see
	// channelstate.go).
	ChannelRestore *ChannelState
	// OnCheckpoint, when set, gets the result of every checkpoint the task
	// learns of, once per id, on the task goroutine (barrier.go): the
	// snapshot, or why there is none. It must not block for long: the
	// TaskManager hands the snapshot on (upload, ack) elsewhere.
	OnCheckpoint func(id int64, snap TaskSnapshot, err error)
	// WaitForFinalCheckpoint makes a task whose input has ended stay, its
	// operators finished and its end of partition sent, until it is
	// notified of a checkpoint it took after that point (FLIP-147): a
	// two-phase-commit sink's last transaction is committed only by such a
	// checkpoint, so the task must still be there to take it and to commit
	// on its notification. The TaskManager sets it when the job checkpoints.
	WaitForFinalCheckpoint bool
	// OnEndOfInput, when set, is called once on the task goroutine when a
	// task waiting for its final checkpoint has finished its operators and
	// ended its outputs: from then on it only takes checkpoint triggers
	// and notifications (the TaskManager tells the JobMaster, whose
	// coordinator triggers the final checkpoint once every task waits).
	OnEndOfInput func()

	mailbox mailbox
	// outputs are the writers' availability, checked before each batch of
	// input or source step.
	outputs []availability
	// current is the index in Chain of the operator running now (-1: none);
	// chaining outputs and input processors keep it up to date, so a panic
	// is attributed to the innermost operator (see ChainingOutput).
	current int
	// cancel is set when Run's context ends (shared with Time).
	cancel *CancelFlag
	// lastCheckpoint is, in a source task, the newest checkpoint id
	// triggered or aborted (other tasks keep theirs in the gate).
	lastCheckpoint int64
	// inputEnded: the operators finished and the outputs ended; only
	// checkpoints and notifications are left (WaitForFinalCheckpoint).
	inputEnded bool
	// deferred is a trigger of a task with inputs that came before its
	// input ended: taken once it has (see triggerMail).
	deferred *CheckpointOptions
	// finalFrom is the first checkpoint taken after the input ended (0:
	// none yet); released is set by a notification of it or a later one.
	finalFrom int64
	released  bool
	// lastTaken is the newest checkpoint the task took (snapshot without
	// error); lastCompleted the newest notified complete.
	lastTaken, lastCompleted int64
	// stopping is, in a source task, the stop-with-savepoint it took and
	// waits for (0: none): it reads no more until notified (barrier.go).
	stopping int64
	// stoppedAt is the stop-with-savepoint the task ends with (0: none);
	// stopAborted says it was aborted after all, so stopEnd waits no more.
	stoppedAt   int64
	stopAborted bool
	// endRequested is set by EndInput: the source ends its input.
	endRequested bool
	// times accounts busy, idle and back-pressured time (tasktime.go).
	times TaskTimes
}

// CancelFlag is the task's cancellation flag, set when Run's context ends,
// for chaining outputs to check per record.
func (t *Task) CancelFlag() *CancelFlag { return t.cancel }

// cancelWatcher is an input processor that checks the task's cancellation
// flag per record.
type cancelWatcher interface{ watchCancel(*CancelFlag) }

// NewTask returns a task; the caller fills Chain, Input and Writers.
func NewTask(info TaskInfo, notify network.Notifier, clock Clock, logger *slog.Logger) *Task {
	if logger == nil {
		logger = slog.Default()
	}
	pt := newProcessingTime(clock)
	return &Task{
		Info:    info,
		Notify:  notify,
		Time:    pt,
		cancel:  pt.cancel,
		Logger:  logger,
		current: -1,
	}
}

// ErrTaskStopped is returned by Mail once the task has stopped.
var ErrTaskStopped = errors.New("task stopped")

// Mail runs fn on the task goroutine between two batches, also while the
// task is backpressured (its outputs full). It never blocks: the mailbox is
// unbounded, so a JobMaster or checkpoint coordinator mailing many tasks is
// never held up by one slow task. Mail to a task that has stopped returns
// ErrTaskStopped; mail queued when the task stops does not run. ctx is only
// checked on entry.
func (t *Task) Mail(ctx context.Context, fn func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return t.mailDropped(fn, nil)
}

// mailDropped is Mail with a handler that runs, on the task goroutine,
// instead of fn if the task stops before fn ran.
func (t *Task) mailDropped(fn, dropped func()) error {
	if !t.mailbox.put(mail{run: fn, dropped: dropped}) {
		return ErrTaskStopped
	}
	t.Notify.Notify()
	return nil
}

// availability is a writer that can tell whether it can take a batch
// without blocking (see Writer.Available).
type availability interface {
	Available() bool
	FlushStarving()
	NotifyAvailable(network.Notifier)
}

// ErrTaskCanceled is returned by Run when the task stopped because its
// context was cancelled.
var ErrTaskCanceled = errors.New("task canceled")

// Run executes the task until its input ends (nil), it fails (a *TaskError)
// or ctx is cancelled (ErrTaskCanceled). Operators are opened tail first and
// always closed.
func (t *Task) Run(ctx context.Context) (err error) {
	opened := 0
	defer t.mailbox.close()
	// Cancellation must take effect between two calls of user code, not
	// only between batches: the flag is checked per record and per timer.
	stop := context.AfterFunc(ctx, t.cancel.Set)
	defer stop()
	if cw, ok := t.Input.(cancelWatcher); ok {
		cw.watchCancel(t.cancel)
	}
	if g := t.gate(); g != nil {
		g.setBarrierHandler(t)
	}
	t.outputs = t.outputs[:0]
	for _, w := range t.Writers {
		if a, ok := w.(availability); ok {
			a.NotifyAvailable(t.Notify)
			t.outputs = append(t.outputs, a)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = t.toError(ctx, r)
		}
		if g := t.gate(); g != nil {
			// No alignment-timeout timer outlives the task.
			g.stopAlignmentTimeout()
		}
		if d := t.deferred; d != nil {
			// Every trigger gets its report, also one the task's end
			// caught before its input ended.
			t.deferred = nil
			t.report(d.ID, TaskSnapshot{}, fmt.Errorf("checkpoint %d: %w", d.ID, ErrTaskStopped))
		}
		// Close in chain order; the first close error is reported if the task
		// had none.
		for i := len(t.Chain) - opened; i < len(t.Chain); i++ {
			c := t.Chain[i]
			if cerr := t.closeOp(c); cerr != nil && err == nil {
				err = &TaskError{Job: t.Info.JobName, Operator: c.Name, Task: t.Info, Err: fmt.Errorf("close: %w", cerr)}
			}
		}
		t.publish()
	}()
	if err := t.initState(); err != nil {
		return err
	}
	for i := len(t.Chain) - 1; i >= 0; i-- {
		c := t.Chain[i]
		// Counted before Open: an operator whose Open fails half-way is
		// closed too, so it can release what it did acquire (Close is
		// "always called", see Operator).
		opened++
		if oerr := t.call(i, func() error { return c.Op.Open(c.Ctx) }); oerr != nil {
			return &TaskError{Job: t.Info.JobName, Operator: c.Name, Task: t.Info, Err: fmt.Errorf("open: %w", oerr)}
		}
		if serr := c.Ctx.stateErr(); serr != nil {
			return &TaskError{Job: t.Info.JobName, Operator: c.Name, Task: t.Info, Err: fmt.Errorf("open: %w", serr)}
		}
	}
	t.restoreWatermarks()
	if t.OnRunning != nil {
		t.OnRunning()
	}
	if rerr := t.replayChannelState(); rerr != nil {
		return &TaskError{Job: t.Info.JobName, Task: t.Info, Err: rerr}
	}
	err = t.loop(ctx)
	if err == nil && t.stoppedAt > 0 {
		// Stopped by a savepoint: no end-of-input processing, no final
		// checkpoint (barrier.go, "Stop with savepoint").
		return t.stopEnd(ctx)
	}
	if err != nil || !t.WaitForFinalCheckpoint {
		// No mail runs after the loop: closing the mailbox now makes a
		// checkpoint trigger for a task whose input has ended fail at
		// once (ErrTaskStopped) instead of waiting in a mailbox no one
		// reads.
		t.mailbox.close()
	}
	if err != nil {
		return err
	}
	for i, c := range t.Chain {
		if ferr := t.call(i, c.Op.Finish); ferr != nil {
			return &TaskError{Job: t.Info.JobName, Operator: c.Name, Task: t.Info, Err: fmt.Errorf("finish: %w", ferr)}
		}
	}
	for _, w := range t.Writers {
		w.EndOfPartition()
	}
	if !t.WaitForFinalCheckpoint {
		return nil
	}
	return t.awaitFinalCheckpoint(ctx)
}

// awaitFinalCheckpoint is the rest of a finished task's life with
// checkpointing (FLIP-147): it reports its end of input, takes the
// checkpoint triggered since (the deferred one, or one mailed later) and
// returns once notified of a checkpoint it took after its end of input,
// so the output its operators flushed at Finish is committed before the
// task is FINISHED. Only mail runs: timers and input are over.
func (t *Task) awaitFinalCheckpoint(ctx context.Context) error {
	t.inputEnded = true
	if t.OnEndOfInput != nil {
		t.current = -1
		t.OnEndOfInput()
	}
	if d := t.deferred; d != nil {
		t.deferred = nil
		t.triggerEnded(*d)
	}
	for !t.released {
		if ctx.Err() != nil {
			return ErrTaskCanceled
		}
		t.current = -1
		t.runMail()
		if t.released {
			break
		}
		select {
		case <-t.Notify:
		case <-ctx.Done():
			return ErrTaskCanceled
		}
	}
	t.mailbox.close()
	return nil
}

func (t *Task) closeOp(c ChainedOperator) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return c.Op.Close()
}

// call runs an operator life-cycle method, attributing panics to name.
func (t *Task) call(idx int, fn func() error) error {
	// A panic propagates to Run's recover, which attributes it through
	// t.current: to this operator, or to a chained successor it was calling.
	t.current = idx
	return fn()
}

// CurrentOperator is the task's current-operator index, for chaining
// outputs and input processors to maintain.
func (t *Task) CurrentOperator() *int { return &t.current }

func (t *Task) currentName() string {
	if t.current >= 0 && t.current < len(t.Chain) {
		return t.Chain[t.current].Name
	}
	if len(t.Chain) > 0 {
		return t.Chain[0].Name
	}
	return ""
}

// toError turns what Run recovered into the task's result. It does not log
// at error level: the JobMaster, which decides the job's fate, logs the
// failure once. The stack of a real panic goes with the error (and to the
// debug log here), for whoever wants it.
func (t *Task) toError(ctx context.Context, r any) error {
	var stack string
	if _, ok := r.(failure); !ok {
		if _, ok := r.(canceled); !ok {
			stack = string(debug.Stack())
			t.Logger.Debug("task panicked", "operator", t.currentName(), "panic", r, "stack", stack)
			r = Attribute(t.currentName(), r)
		}
	}
	switch v := r.(type) {
	case canceled:
		return ErrTaskCanceled
	case failure:
		if ctx.Err() != nil && errors.Is(v.err, network.ErrCanceled) {
			return ErrTaskCanceled
		}
		if v.op == "" {
			v.op = t.currentName()
		}
		return &TaskError{Job: t.Info.JobName, Operator: v.op, Task: t.Info, Err: v.err, Stack: stack}
	}
	return &TaskError{Job: t.Info.JobName, Operator: t.currentName(), Task: t.Info, Err: fmt.Errorf("panic: %v", r), Stack: stack}
}

func (t *Task) publish() {
	t.publishWatermarks()
	for _, c := range t.Chain {
		if c.In != nil {
			c.In.Publish()
		}
		if c.Out != nil {
			c.Out.Publish()
		}
	}
}

func (t *Task) runMail() {
	q := t.mailbox.take()
	if q == nil {
		return
	}
	for _, ml := range q {
		ml.run()
	}
	t.mailbox.done(q)
}

// outputsAvailable reports whether every writer can take a batch.
func (t *Task) outputsAvailable() bool {
	for _, o := range t.outputs {
		if !o.Available() {
			return false
		}
	}
	return true
}

// loop is the mailbox loop (Flink's MailboxProcessor): mail and due timers
// first, then the default action — one input batch or one source step —
// but only while every output can take a batch. A backpressured task does
// not block in a writer; it waits for a buffer to come back together with
// mail, timers and cancellation, so mail (checkpoint triggers among it)
// runs however long the backpressure lasts.
func (t *Task) loop(ctx context.Context) error {
	var src SourceOperator
	if t.Input == nil {
		if len(t.Chain) == 0 {
			return nil
		}
		var ok bool
		if src, ok = t.Chain[0].Op.(SourceOperator); !ok {
			return &TaskError{Job: t.Info.JobName, Operator: t.Chain[0].Name, Task: t.Info, Err: errors.New("task has no input and its head is not a source")}
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	t.times.begin(time.Now())
	for {
		if ctx.Err() != nil {
			return ErrTaskCanceled
		}
		t.current = -1 // mail and timer callbacks attribute their own panics
		t.runMail()
		if src != nil {
			switch {
			case t.stoppedAt > 0:
				return nil // its stop-with-savepoint is complete
			case t.endRequested:
				t.stopping = 0
				t.endSource(src)
				return nil
			case t.stopping > 0:
				// Waiting for the stop-with-savepoint's outcome: nothing
				// is read and no timer fires after the savepoint's
				// barrier, since a resumed job would do it again.
				t.publish()
				t.times.beginWait(waitIdle)
				ok := t.waitMail(ctx)
				t.times.endWait()
				if !ok {
					return ErrTaskCanceled
				}
				continue
			}
		}
		t.Time.fire()
		if !t.outputsAvailable() {
			// Backpressured. Only consumers out of work get the partial
			// batches (FlushStarving): the others have full buffers to
			// work on, and cutting batches short would cost most exactly
			// when throughput matters. A recycled buffer wakes the task
			// through its notifier.
			if pp, ok := t.Input.(priorityPoller); ok && pp.PollPriority() {
				// An unaligned barrier overtakes the backpressure.
				continue
			}
			for _, o := range t.outputs {
				o.FlushStarving()
			}
			t.publish()
			t.times.beginWait(waitBackPressure)
			ok := t.wait(ctx, timer, time.Time{}, nil)
			t.times.endWait()
			if !ok {
				return ErrTaskCanceled
			}
			continue
		}
		var wakeAt time.Time
		var avail <-chan struct{}
		if src != nil {
			st := t.step(src)
			switch st.Status {
			case More:
				// Publish once per batch (a few atomic stores per
				// operator), so metrics read while the job runs lag by at
				// most one batch.
				t.publish()
				continue
			case EndOfInput:
				t.endSource(src)
				return nil
			case NothingAvailable:
				wakeAt, avail = st.WakeAt, st.Avail
			}
		} else {
			progress, done := t.Input.Poll()
			if done {
				if g := t.gate(); g != nil && g.stopped > 0 {
					t.stoppedAt = g.stopped
				}
				return nil
			}
			if progress {
				t.publish()
				continue
			}
		}
		// Nothing to do: flush partial batches so records never wait in them
		// while the task idles, then sleep until input, mail or a timer.
		for _, w := range t.Writers {
			w.Flush()
		}
		t.publish()
		t.times.beginWait(waitIdle)
		ok := t.wait(ctx, timer, wakeAt, avail)
		t.times.endWait()
		if !ok {
			return ErrTaskCanceled
		}
	}
}

// wait sleeps until the task's notifier fires (input, mail, a buffer handed
// back by a consumer), avail fires, wakeAt or the next processing-time timer
// is due, or ctx ends (false).
func (t *Task) wait(ctx context.Context, timer *time.Timer, wakeAt time.Time, avail <-chan struct{}) bool {
	if next, ok := t.Time.next(); ok {
		if wakeAt.IsZero() || next < wakeAt.UnixMilli() {
			wakeAt = time.UnixMilli(next)
		}
	}
	var timerC <-chan time.Time
	if !wakeAt.IsZero() {
		d := time.Until(wakeAt)
		if d <= 0 {
			return true
		}
		timer.Reset(d)
		timerC = timer.C
	}
	ok := true
	select {
	case <-t.Notify:
	case <-avail:
	case <-timerC:
	case <-ctx.Done():
		ok = false
	}
	if timerC != nil && !timer.Stop() {
		select {
		case <-timer.C:
		default:
		}
	}
	return ok
}

func (t *Task) step(src SourceOperator) SourceStep {
	t.current = 0
	return src.Step()
}

func (t *Task) endSource(src SourceOperator) {
	t.current = 0
	src.EndInput()
}
