package operator

import (
	"slices"

	"github.com/strom-dev/strom/window"
)

// evictorContext is what EvictingFuncs need of the window functions'
// context: it is the evictors' context, and it knows the firing window.
type evictorContext interface {
	window.EvictorContext
	Window() window.TimeWindow
}

// TsVal is an element of a window with an evictor: a record and its
// timestamp.
type TsVal[T any] struct {
	V  T
	TS int64
}

// evictElems is the window.Elements (and window.Values[T]) evictors see.
type evictElems[T any] struct {
	s       []TsVal[T]
	evicted []bool
	n       int // elements marked
}

func (e *evictElems[T]) Len() int              { return len(e.s) }
func (e *evictElems[T]) Timestamp(i int) int64 { return e.s[i].TS }
func (e *evictElems[T]) Value(i int) T         { return e.s[i].V }
func (e *evictElems[T]) Evicted(i int) bool    { return e.evicted[i] }

func (e *evictElems[T]) Evict(i int) {
	if !e.evicted[i] {
		e.evicted[i] = true
		e.n++
	}
}

// begin shows s to an evictor.
func (e *evictElems[T]) begin(s []TsVal[T]) *evictElems[T] {
	e.s, e.n = s, 0
	e.evicted = slices.Grow(e.evicted[:0], len(s))[:len(s)]
	clear(e.evicted)
	return e
}

// end removes the marked elements and returns what is left.
func (e *evictElems[T]) end() []TsVal[T] {
	s := e.s
	e.s = nil
	if e.n == 0 {
		return s
	}
	j := 0
	for i, x := range s {
		if !e.evicted[i] {
			s[j] = x
			j++
		}
	}
	clear(s[j:])
	return s[:j]
}

// EvictingFuncs keep every element of a window with its timestamp; a
// firing runs the evictor's EvictBefore, f over what is left, then
// EvictAfter (Flink's EvictingWindowOperator). A window whose elements
// were all evicted does not fire again, as in Flink.
func EvictingFuncs[T any, C evictorContext](ev window.Evictor, f WholeFn[T, C]) WindowFuncs[T, []TsVal[T], C] {
	var elems evictElems[T]
	var vals []T
	return WindowFuncs[T, []TsVal[T], C]{
		Add: func(s *[]TsVal[T], v T, ts int64, _ bool) { *s = append(*s, TsVal[T]{v, ts}) },
		Merge: func(dst, src *[]TsVal[T]) {
			*dst = append(*dst, *src...)
		},
		Emit: func(ctx C, s *[]TsVal[T]) error {
			if len(*s) == 0 {
				return nil
			}
			ev.EvictBefore(elems.begin(*s), ctx.Window(), ctx)
			*s = elems.end()
			for _, e := range *s {
				vals = append(vals, e.V)
			}
			err := f.Process(ctx, vals)
			clear(vals)
			vals = vals[:0]
			ev.EvictAfter(elems.begin(*s), ctx.Window(), ctx)
			*s = elems.end()
			return err
		},
		Clear: f.Clear, Close: f.Close, UserCtx: f.UserCtx,
	}
}
