package strom

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/operator"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/statebackend"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

// WindowContext is what a window function sees when a window fires (Flink's
// ProcessWindowFunction.Context): the key and window, the operator's
// times, the output, side outputs (OutputTag.Emit) and keyed state — per
// window (WindowState) and per key (GlobalState). It belongs to one
// subtask and is only valid during the call it was passed to.
type WindowContext[K comparable, OUT any] struct {
	key     K
	win     window.TimeWindow
	out     runtime.Output[OUT]
	rt      *runtime.Context
	backend *statebackend.Keyed[K]
	timers  *runtime.Timers[K, window.TimeWindow]
	hasher  keygroup.Hasher[K]
	merging bool
	// ws holds the per-window state, made on first use; clears caches its
	// states' Clear methods.
	ws     *statebackend.Keyed[WindowKey[K]]
	clears []interface{ Clear() }
}

// Key is the window's key (struct{} after WindowAll).
func (c *WindowContext[K, OUT]) Key() K { return c.key }

// Window is the window that fired (or is being cleared).
func (c *WindowContext[K, OUT]) Window() window.TimeWindow { return c.win }

// CurrentWatermark is the operator's current event time.
func (c *WindowContext[K, OUT]) CurrentWatermark() int64 { return c.timers.CurrentWatermark() }

// CurrentProcessingTime is the wall clock in epoch ms.
func (c *WindowContext[K, OUT]) CurrentProcessingTime() int64 { return c.rt.Time.Now() }

// Collect emits a record with the window's max timestamp (End − 1).
func (c *WindowContext[K, OUT]) Collect(v OUT) { c.out.Collect(v, c.win.MaxTimestamp()) }

func (c *WindowContext[K, OUT]) sideOutput(tag string) sideTarget {
	return sideTarget{out: c.rt.SideOutput(tag), operator: c.rt.OperatorName, ts: c.win.MaxTimestamp()}
}

// GlobalState is the keyed state of the window's key, shared by all its
// windows (Flink's globalState()): pass it to package state,
//
//	seen, err := state.GetValue(ctx.GlobalState(), seenDesc)
//
// It lives as long as the job, like the state of a keyed process function.
func (c *WindowContext[K, OUT]) GlobalState() state.Scope[K] { return keyScope[K]{c.backend} }

// WindowState is the keyed state of the window's key and window (Flink's
// windowState()): pass it to package state,
//
//	firings, err := state.GetValue(ctx.WindowState(), firingsDesc)
//
// Each window of each key has its own values, which live until the window
// is cleaned up: the operator drops them then, right after the function's
// Clear (WindowClearer), so Clear may still read them — to move what should
// outlive the window into GlobalState, say. Per-window state is useful
// when a window fires more than once (allowed lateness, early-firing
// triggers). As in Flink, merging (session) windows have none: calling
// WindowState with them fails the job.
func (c *WindowContext[K, OUT]) WindowState() state.Scope[WindowKey[K]] {
	if c.merging {
		runtime.Fail(c.rt.OperatorName, errors.New("WindowState: merging (session) windows have no per-window state, as in Flink; use GlobalState"))
	}
	if c.ws == nil {
		if err := c.newWindowState(); err != nil {
			runtime.Fail(c.rt.OperatorName, fmt.Errorf("WindowState: %w", err))
		}
	}
	return windowScope[K]{c.ws}
}

// WindowKey is the key of per-window state (WindowContext.WindowState): a
// stream key and one of its windows.
type WindowKey[K comparable] struct {
	Key    K
	Window window.TimeWindow
}

// keyScope and windowScope give package state the backends of global and
// per-window state.
type keyScope[K comparable] struct{ b *statebackend.Keyed[K] }

func (s keyScope[K]) Key() K { return s.b.CurrentKey() }

func (s keyScope[K]) KeyedStateStore() *state.Store { return statebackend.StoreOf(s.b).(*state.Store) }

type windowScope[K comparable] struct {
	b *statebackend.Keyed[WindowKey[K]]
}

func (s windowScope[K]) Key() WindowKey[K] { return s.b.CurrentKey() }

func (s windowScope[K]) KeyedStateStore() *state.Store {
	return statebackend.StoreOf(s.b).(*state.Store)
}

// windowStateName is the name under which per-window state is registered
// (and snapshotted) in the operator's backend.
const windowStateName = "window-user-state"

// newWindowState makes the per-window state: a backend of its own, keyed
// by (key, window) with the key's hash, so an entry lives in its key's key
// group, and registered with the operator's backend as one state, so
// snapshots and rescaling take it along.
func (c *WindowContext[K, OUT]) newWindowState() error {
	h := c.hasher
	ws := statebackend.NewKeyed(func(k WindowKey[K]) uint64 { return h(k.Key) }, c.backend.MaxParallelism(), c.backend.Range())
	if _, err := c.backend.Register(windowStateName, &nestedState[WindowKey[K]]{b: ws, tag: "window-state<" + reflect.TypeFor[K]().String() + ">"}); err != nil {
		return err
	}
	c.ws = ws
	c.ws.SetCurrentKey(WindowKey[K]{c.key, c.win})
	return nil
}

// windowContextOf binds a subtask's WindowContext for the window engine,
// once the engine has made the backend and timers.
func windowContextOf[K comparable, OUT any](out runtime.Output[OUT], hasher keygroup.Hasher[K]) func(*runtime.Context, *statebackend.Keyed[K], *runtime.Timers[K, window.TimeWindow], bool) operator.Context[K, *WindowContext[K, OUT]] {
	return func(rt *runtime.Context, b *statebackend.Keyed[K], timers *runtime.Timers[K, window.TimeWindow], merging bool) operator.Context[K, *WindowContext[K, OUT]] {
		c := &WindowContext[K, OUT]{out: out, rt: rt, backend: b, timers: timers, hasher: hasher, merging: merging}
		return operator.Context[K, *WindowContext[K, OUT]]{At: c.at, DropWindowState: c.dropWindowState}
	}
}

// at makes key and win the context's current window before a user call.
func (c *WindowContext[K, OUT]) at(key K, win window.TimeWindow) *WindowContext[K, OUT] {
	c.key, c.win = key, win
	if c.ws != nil {
		c.ws.SetCurrentKey(WindowKey[K]{key, win})
	}
	return c
}

// dropWindowState drops the per-window state of the current window.
func (c *WindowContext[K, OUT]) dropWindowState() {
	if c.ws == nil {
		return
	}
	if c.ws.NumStates() != len(c.clears) {
		c.clears = c.clears[:0]
		for _, name := range c.ws.StateNames() {
			s, _ := c.ws.Lookup(name)
			if cl, ok := s.(interface{ Clear() }); ok {
				c.clears = append(c.clears, cl)
			}
		}
	}
	for _, cl := range c.clears {
		cl.Clear()
	}
}

// nestedState is a whole backend registered as one state of another with
// the same key groups: its snapshot data per key group is the nested
// backend's key-group payload (statebackend.Keyed.SnapshotKeyGroup).
type nestedState[K comparable] struct {
	b   *statebackend.Keyed[K]
	tag string
}

func (s *nestedState[K]) StateType() string { return s.tag }

func (s *nestedState[K]) SnapshotKeyGroup(kg int, dst []byte) ([]byte, error) {
	start := len(dst)
	dst, err := s.b.SnapshotKeyGroup(s.b.Range().Start+kg, dst)
	if err != nil {
		return dst, err
	}
	if len(dst) == start+1 && dst[start] == 0 {
		return dst[:start], nil // no states with entries in kg
	}
	return dst, nil
}

func (s *nestedState[K]) RestoreKeyGroup(kg int, src []byte) error {
	return s.b.RestoreKeyGroup(s.b.Range().Start+kg, src)
}
