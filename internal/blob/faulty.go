package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Op names a Store operation for fault injection and counting.
type Op uint8

const (
	OpWrite Op = iota + 1 // Write and WriteFrom
	OpRead
	OpDelete
	OpList
	OpExists
	numOps
)

func (o Op) String() string {
	switch o {
	case OpWrite:
		return "write"
	case OpRead:
		return "read"
	case OpDelete:
		return "delete"
	case OpList:
		return "list"
	case OpExists:
		return "exists"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// ErrInjected is what an injected fault returns when its Err is nil.
var ErrInjected = errors.New("blob: injected fault")

// Fault describes one injected misbehaviour. It applies to operations of
// kind Op whose key (the prefix, for a list) Match accepts (nil: all).
// Among those it fires on the Nth (1-based) only, or on every one when Nth
// is 0.
//
// When it fires, in this order: the operation waits Delay (or until its
// context ends); a write with Tear stores only the first Keep bytes of its
// data (a torn write: what a store without atomic writes, or a file system
// without fsync after power loss, can leave); then, if Err is set or the
// fault is not a pure delay or tear, the operation fails with Err (or
// ErrInjected) — a torn write with Err set is a write that failed half way
// and left its prefix behind; a torn write without Err reports success.
// Tear applies to writes only; on other operations such a fault fails.
type Fault struct {
	Op    Op
	Match func(key string) bool
	Nth   int
	Delay time.Duration
	Tear  bool
	Keep  int
	Err   error

	seen int // matching operations so far; guarded by Faulty.mu
}

// KeyContains matches keys containing s.
func KeyContains(s string) func(string) bool {
	return func(key string) bool { return strings.Contains(key, s) }
}

// KeySuffix matches keys ending in s.
func KeySuffix(s string) func(string) bool {
	return func(key string) bool { return strings.HasSuffix(key, s) }
}

// Faulty wraps a Store and misbehaves as its faults say; it is how tests
// reach every failure path of the checkpoint code. It also counts the
// operations it was asked to do, failed or not.
type Faulty struct {
	Store

	mu     sync.Mutex
	faults []*Fault
	counts [numOps]int
}

// NewFaulty wraps s; with no faults it behaves exactly like s.
func NewFaulty(s Store) *Faulty { return &Faulty{Store: s} }

// Inject adds a fault; faults are checked in the order they were added and
// the first that fires decides.
func (f *Faulty) Inject(flt Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &flt)
}

// Clear removes all faults (the counts stay).
func (f *Faulty) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// Count returns how many operations of kind op were asked for so far.
func (f *Faulty) Count(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op]
}

// fire counts the operation and returns the fault that fires on it, if
// any. Every matching fault counts the operation, also when an earlier one
// fires, so that "the 3rd write" means the 3rd write whatever else happens.
func (f *Faulty) fire(op Op, key string) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[op]++
	var fired *Fault
	for _, flt := range f.faults {
		if flt.Op != op || (flt.Match != nil && !flt.Match(key)) {
			continue
		}
		flt.seen++
		if fired == nil && (flt.Nth == 0 || flt.Nth == flt.seen) {
			fired = flt
		}
	}
	return fired
}

// before runs the delay of a fired fault and returns the error the
// operation must fail with, if any, for operations other than a tear.
func (f *Faulty) before(ctx context.Context, op Op, key string, flt *Fault) error {
	if flt == nil {
		return nil
	}
	if flt.Delay > 0 {
		t := time.NewTimer(flt.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return &Error{Op: op.String(), URL: f.URL(), Key: key, Err: ctx.Err()}
		}
	}
	if flt.Tear && op == OpWrite {
		return nil // the write itself stores the prefix, then fails or not
	}
	return f.injected(op, key, flt)
}

func (f *Faulty) injected(op Op, key string, flt *Fault) error {
	if flt.Err == nil && (flt.Delay > 0 || (flt.Tear && op == OpWrite)) {
		return nil
	}
	err := flt.Err
	if err == nil {
		err = ErrInjected
	}
	return &Error{Op: op.String(), URL: f.URL(), Key: key, Err: err}
}

func (f *Faulty) Write(ctx context.Context, key string, data []byte, opts WriteOptions) error {
	flt := f.fire(OpWrite, key)
	if err := f.before(ctx, OpWrite, key, flt); err != nil {
		return err
	}
	if flt != nil && flt.Tear {
		if flt.Keep < len(data) {
			data = data[:max(flt.Keep, 0)]
		}
		if err := f.Store.Write(ctx, key, data, opts); err != nil {
			return err
		}
		return f.injected(OpWrite, key, flt)
	}
	return f.Store.Write(ctx, key, data, opts)
}

func (f *Faulty) WriteFrom(ctx context.Context, key string, r io.Reader, opts WriteOptions) error {
	flt := f.fire(OpWrite, key)
	if err := f.before(ctx, OpWrite, key, flt); err != nil {
		return err
	}
	if flt != nil && flt.Tear {
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, io.LimitReader(r, int64(max(flt.Keep, 0)))); err != nil {
			return &Error{Op: "write", URL: f.URL(), Key: key, Err: err}
		}
		if err := f.Store.Write(ctx, key, buf.Bytes(), opts); err != nil {
			return err
		}
		return f.injected(OpWrite, key, flt)
	}
	return f.Store.WriteFrom(ctx, key, r, opts)
}

func (f *Faulty) Read(ctx context.Context, key string) ([]byte, error) {
	if err := f.before(ctx, OpRead, key, f.fire(OpRead, key)); err != nil {
		return nil, err
	}
	return f.Store.Read(ctx, key)
}

func (f *Faulty) Delete(ctx context.Context, key string) error {
	if err := f.before(ctx, OpDelete, key, f.fire(OpDelete, key)); err != nil {
		return err
	}
	return f.Store.Delete(ctx, key)
}

func (f *Faulty) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := f.before(ctx, OpList, prefix, f.fire(OpList, prefix)); err != nil {
		return nil, err
	}
	return f.Store.List(ctx, prefix)
}

func (f *Faulty) Exists(ctx context.Context, key string) (bool, error) {
	if err := f.before(ctx, OpExists, key, f.fire(OpExists, key)); err != nil {
		return false, err
	}
	return f.Store.Exists(ctx, key)
}
