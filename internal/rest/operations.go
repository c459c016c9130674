package rest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"
	"time"
)

// operations are the asynchronous operations (savepoints, stop with
// savepoint, savepoint disposal) the REST API has started, by scope (a job
// id, or "disposal") and trigger id: Flink's CompletedOperationCache. A
// POST starts one in the background and answers 202 with its trigger id;
// a GET by trigger id reads its state until OperationTTL after it ended.
//
// Operations run with the Server's context, so Close cancels them and
// waits for them; none outlives the Server.
type operations struct {
	ttl time.Duration
	max int
	now func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	m  map[opKey]*operation
}

type opKey struct{ scope, trigger string }

type operation struct {
	done     bool
	location string
	err      error
	ended    time.Time
}

func newOperations(ttl time.Duration, max int, now func() time.Time) *operations {
	ctx, cancel := context.WithCancel(context.Background())
	return &operations{ttl: ttl, max: max, now: now, ctx: ctx, cancel: cancel, m: map[opKey]*operation{}}
}

// newTriggerID is a random id of Flink's TriggerId shape (32 hex digits).
func newTriggerID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// start runs op in the background under scope and trigger (a new id when
// trigger is empty) and returns the trigger id. A trigger id already known
// in scope starts nothing and returns the same id: a client retrying its
// POST with its own triggerId gets one operation (Flink's idempotency).
func (o *operations) start(scope, trigger string, op func(ctx context.Context) (string, error)) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ctx.Err() != nil {
		return "", errorf(http.StatusServiceUnavailable, "The REST server is shutting down.")
	}
	o.expireLocked()
	if trigger == "" {
		trigger = newTriggerID()
	}
	key := opKey{scope, trigger}
	if _, ok := o.m[key]; ok {
		return trigger, nil
	}
	if len(o.m) >= o.max {
		return "", errorf(http.StatusTooManyRequests, "Too many asynchronous operations (%d) are running or were recently completed; try again later.", o.max)
	}
	rec := &operation{}
	o.m[key] = rec
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		loc, err := op(o.ctx)
		o.mu.Lock()
		rec.done, rec.location, rec.err, rec.ended = true, loc, err, o.now()
		o.mu.Unlock()
	}()
	return trigger, nil
}

// get returns a copy of an operation's state.
func (o *operations) get(scope, trigger string) (operation, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expireLocked()
	rec, ok := o.m[opKey{scope, trigger}]
	if !ok {
		return operation{}, false
	}
	return *rec, true
}

// expireLocked forgets the operations that ended more than ttl ago.
func (o *operations) expireLocked() {
	now := o.now()
	for k, rec := range o.m {
		if rec.done && now.Sub(rec.ended) > o.ttl {
			delete(o.m, k)
		}
	}
}

// close cancels the running operations and waits for them.
func (o *operations) close() {
	o.mu.Lock()
	o.cancel()
	o.mu.Unlock()
	o.wg.Wait()
}
