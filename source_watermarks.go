package strom

import (
	"fmt"

	"github.com/strom-dev/strom/internal/runtime"
)

// FromSourceWithWatermarks creates a stream read by src whose records get
// timestamps and watermarks in the source, by strategy, per split (Flink's
// env.fromSource(source, watermarkStrategy, name)):
//
//   - records a reader collects through SourceOutput.ForSplit(id) are
//     timestamped and watermarked by that split's own generator; records it
//     collects directly on its output, by one reader-level generator;
//   - the subtask's watermark is the minimum over its splits (and the
//     reader-level generator once it has seen a record), leaving out idle
//     ones and the splits released with ReleaseSplit; it is emitted when it
//     advances, after the record that advanced it;
//   - generators emit periodically every Config.AutoWatermarkInterval;
//   - a split is idle after strategy.IdleTimeout without records (or when
//     its generator says so) and active again with its next record; when
//     every split is idle, or the reader has had no split for that long,
//     the subtask is marked idle downstream;
//   - the end of bounded input emits MaxWatermark.
//
// A reader that interleaves several splits thus never makes one split's
// records late because another is ahead in event time, which
// AssignTimestamps after the source (one generator per subtask) cannot
// promise. A source without a strategy (FromSource) pays nothing for this.
func FromSourceWithWatermarks[T any](env *Environment, src Source[T], strategy WatermarkStrategy[T], name string) Stream[T] {
	if strategy.err != nil {
		env.fail(strategy.err)
	}
	if strategy.IdleTimeout < 0 {
		env.fail(errorf("FromSourceWithWatermarks: idle timeout %v must not be negative", strategy.IdleTimeout))
	}
	return addSource(env, src, name, &strategy)
}

// States of a split output.
const (
	outActive   uint8 = iota // takes part in the watermark
	outIdle                  // registered but idle: left out of the minimum
	outUnused                // the reader-level output before its first record
	outReleased              // released: must not be used again
)

// splitOutput is the output of one split (or the reader-level output, id ""):
// it timestamps records, feeds the split's generator and keeps the split's
// watermark and idleness for sourceWatermarks to combine.
type splitOutput[T any] struct {
	w      *sourceWatermarks[T]
	id     string
	gen    WatermarkGenerator
	genOut WatermarkOutput // this output as its generator's WatermarkOutput
	wm     int64
	state  uint8
	// busy says a record (or a watermark advance) came since the last
	// periodic check; lastActive is the processing time that check saw it.
	busy       bool
	lastActive int64
}

func (s *splitOutput[T]) Collect(v T) { s.CollectAt(v, runtime.NoTimestamp) }

func (s *splitOutput[T]) CollectAt(v T, ts int64) {
	w := s.w
	w.cancel.Check()
	if w.assign != nil {
		ts = w.assign(v)
	}
	// The record goes out before any watermark it causes: a punctuated
	// generator must not make its own record late.
	w.out.Collect(v, ts)
	if s.state != outActive {
		w.activate(s)
	}
	s.busy = true
	if s.gen != nil {
		s.gen.OnEvent(ts, s.genOut)
	}
}

func (s *splitOutput[T]) ForSplit(id string) SourceOutput[T] { return s.w.forSplit(id) }
func (s *splitOutput[T]) ReleaseSplit(id string)             { s.w.releaseSplit(id) }

// splitGenOut is a split output seen by its generator.
type splitGenOut[T any] splitOutput[T]

func (g *splitGenOut[T]) EmitWatermark(wm int64) {
	s := (*splitOutput[T])(g)
	if wm <= s.wm || s.state == outReleased {
		return
	}
	old, was := s.wm, s.state
	s.wm = wm
	if s.state != outActive {
		// A generator that advances its watermark is active again (the
		// reader-level output only counts once it has seen a record).
		if s.state == outUnused {
			return
		}
		s.state = outActive
		s.busy = true
	}
	s.w.changed(was, old)
}

func (g *splitGenOut[T]) MarkIdle() {
	s := (*splitOutput[T])(g)
	if s.state != outActive {
		return
	}
	s.state = outIdle
	if !s.w.deferred {
		s.w.update()
	}
}

// sourceWatermarks combines the watermarks of a source subtask's splits.
type sourceWatermarks[T any] struct {
	cancel   *runtime.CancelFlag // checked per record, as sourceEmit does
	name     string
	out      runtime.Output[T]
	newGen   func() WatermarkGenerator
	assign   func(T) int64
	idleMs   int64 // 0: no idleness detection
	time     *runtime.ProcessingTime
	main     *splitOutput[T]            // the reader-level output
	splits   map[string]*splitOutput[T] // by split ID, until released
	live     []*splitOutput[T]          // outputs that take part: main once used, splits until released
	lastWM   int64                      // the last watermark emitted
	idle     bool                       // MarkIdle sent and no record since
	deferred bool                       // in periodic: combine once at the end
	// emptySince is when the subtask last had no live output (0: it has
	// some), for idleness of a reader without splits.
	emptySince int64
}

func newSourceWatermarks[T any](name string, out runtime.Output[T], st WatermarkStrategy[T], pt *runtime.ProcessingTime, cancel *runtime.CancelFlag) *sourceWatermarks[T] {
	w := &sourceWatermarks[T]{
		cancel: cancel,
		name:   name,
		out:    out,
		newGen: st.NewGenerator,
		assign: st.Timestamp,
		idleMs: st.IdleTimeout.Milliseconds(),
		time:   pt,
		splits: make(map[string]*splitOutput[T]),
		lastWM: runtime.MinWatermark,
	}
	if w.idleMs == 0 && st.IdleTimeout > 0 {
		w.idleMs = 1
	}
	w.main = w.newOutput("")
	w.main.state = outUnused
	w.emptySince = pt.Now()
	return w
}

func (w *sourceWatermarks[T]) newOutput(id string) *splitOutput[T] {
	s := &splitOutput[T]{w: w, id: id, wm: runtime.MinWatermark, lastActive: w.time.Now()}
	s.genOut = (*splitGenOut[T])(s)
	if w.newGen != nil {
		s.gen = w.newGen()
	}
	return s
}

// forSplit returns the split's output, registering it (with no watermark
// yet: it holds back the subtask's until its generator emits one).
func (w *sourceWatermarks[T]) forSplit(id string) SourceOutput[T] {
	if s, ok := w.splits[id]; ok {
		return s
	}
	s := w.newOutput(id)
	w.splits[id] = s
	w.live = append(w.live, s)
	return s
}

func (w *sourceWatermarks[T]) releaseSplit(id string) {
	s, ok := w.splits[id]
	if !ok {
		return
	}
	delete(w.splits, id)
	s.state = outReleased
	for i, l := range w.live {
		if l == s {
			w.live = append(w.live[:i], w.live[i+1:]...)
			break
		}
	}
	w.update()
}

// activate makes s take part again after a record arrived on it.
func (w *sourceWatermarks[T]) activate(s *splitOutput[T]) {
	switch s.state {
	case outReleased:
		runtime.Fail(w.name, fmt.Errorf("source %q: record collected for split %q after ReleaseSplit", w.name, s.id))
	case outUnused:
		w.live = append(w.live, s)
	}
	s.state = outActive
	// The record has reactivated the stream downstream.
	w.idle = false
	w.update()
}

// changed is called when an output's watermark or state changed; was and
// old are its state and watermark before.
func (w *sourceWatermarks[T]) changed(was uint8, old int64) {
	if w.deferred {
		return
	}
	// The minimum over active outputs is never above lastWM once combined
	// (update emits it otherwise), so an active output above lastWM did not
	// hold it: raising it changes nothing.
	if was == outActive && old > w.lastWM {
		return
	}
	w.update()
}

// update emits the minimum watermark over the active outputs if it
// advanced, or marks the subtask idle if every output is idle.
func (w *sourceWatermarks[T]) update() {
	low := int64(runtime.MaxWatermark)
	active := 0
	for _, s := range w.live {
		if s.state == outActive {
			active++
			low = min(low, s.wm)
		}
	}
	if active == 0 {
		if len(w.live) > 0 && !w.idle {
			w.idle = true
			w.out.MarkIdle()
		}
		return
	}
	if low > w.lastWM {
		w.lastWM = low
		w.idle = false
		w.out.EmitWatermark(low)
	}
}

// periodic runs every generator's periodic emit and the idleness checks,
// then combines once.
func (w *sourceWatermarks[T]) periodic(now int64) {
	w.deferred = true
	for _, s := range w.live {
		if s.gen != nil {
			s.gen.OnPeriodicEmit(s.genOut)
		}
		if s.busy {
			s.busy = false
			s.lastActive = now
		} else if w.idleMs > 0 && s.state == outActive && now-s.lastActive >= w.idleMs {
			s.state = outIdle
		}
	}
	w.deferred = false
	if len(w.live) > 0 {
		w.emptySince = 0
		w.update()
		return
	}
	// No split at all (none assigned, or all released): idle after the
	// timeout, as a reader with nothing to read.
	if w.emptySince == 0 {
		w.emptySince = now
	}
	if w.idleMs > 0 && !w.idle && now-w.emptySince >= w.idleMs {
		w.idle = true
		w.out.MarkIdle()
	}
}
