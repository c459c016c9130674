package tcp_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/network/tcp"
)

// quiet discards the endpoints' logs (connection failures the tests
// cause on purpose, and peers closed at the end of each test).
var quiet = slog.New(slog.DiscardHandler)

// wait is how long a test waits for something that should happen at once
// on loopback.
const wait = 10 * time.Second

// Item is a record type with a string, as most real records have.
type Item struct {
	ID   int64
	Name string
}

func listen(t *testing.T) *tcp.Endpoint {
	t.Helper()
	e, err := tcp.Listen(tcp.Config{Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

func key(attempt, consumer int) network.ChannelKey {
	return network.ChannelKey{Job: "job", Attempt: attempt, Edge: 1, Producer: 0, Consumer: consumer}
}

// errs collects a channel's OnError calls.
type errs struct {
	mu  sync.Mutex
	got []error
	ch  chan error
}

func newErrs() *errs { return &errs{ch: make(chan error, 16)} }

func (e *errs) on(err error) {
	e.mu.Lock()
	e.got = append(e.got, err)
	e.mu.Unlock()
	e.ch <- err
}

func (e *errs) none(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	require.Empty(t, e.got)
}

func (e *errs) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-e.ch:
		return err
	case <-time.After(wait):
		t.Fatal("no channel error")
		return nil
	}
}

// link opens both ends of channel k between producer endpoint p and
// consumer endpoint c.
type link[T any] struct {
	out, in  *network.Channel[T]
	notify   network.Notifier
	outErr   *errs
	inErr    *errs
	producer network.Notifier
}

func open[T any](t *testing.T, p, c *tcp.Endpoint, k network.ChannelKey, opts tcp.ChannelOptions) *link[T] {
	t.Helper()
	l := &link[T]{notify: network.NewNotifier(), outErr: newErrs(), inErr: newErrs(), producer: network.NewNotifier()}
	o := opts
	o.OnError = l.outErr.on
	out, err := tcp.Output[T](p, k, codec.Of[T](), o)
	require.NoError(t, err)
	out.SetProducerNotifier(l.producer)
	i := opts
	i.OnError = l.inErr.on
	in, err := tcp.Input[T](context.Background(), c, k, p.Addr(), codec.Of[T](), l.notify, i)
	require.NoError(t, err)
	l.out, l.in = out, in
	return l
}

// send sends one batch on the producer's channel, blocking for a buffer.
func send[T any](t *testing.T, ch *network.Channel[T], fill func(b *network.Batch[T])) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	b, err := ch.Acquire(ctx)
	require.NoError(t, err)
	fill(b)
	ch.Send(b)
}

// recv polls the consumer's channel until a batch arrives, copies it and
// recycles it.
func recv[T any](t *testing.T, l *link[T]) network.Batch[T] {
	t.Helper()
	deadline := time.After(wait)
	for {
		if b, ok := l.in.Poll(); ok {
			c := copyBatch(b)
			l.in.Recycle(b)
			return c
		}
		select {
		case <-l.notify:
		case <-deadline:
			t.Fatal("no batch arrived")
		}
	}
}

func copyBatch[T any](b *network.Batch[T]) network.Batch[T] {
	return network.Batch[T]{
		Kind: b.Kind, Value: b.Value, Barrier: b.Barrier,
		Recs:  append([]network.Rec[T](nil), b.Recs...),
		Marks: append([]network.Mark(nil), b.Marks...),
	}
}

// eventually waits for cond.
func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	require.Eventually(t, cond, wait, time.Millisecond, what)
}
