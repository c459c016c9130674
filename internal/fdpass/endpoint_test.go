package fdpass_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/fdpass"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/network/tcp"
)

// The seams fit the data plane as the distributed runtime wires it: the
// producer's endpoint listens on a Listener fed by a TaskManager's one
// data port, the consumer's endpoint dials with Dialer, and a channel's
// batches flow between them through a handed-over socket. The producer's
// endpoint advertises the TaskManager's address, so that is what the
// consumer dials.
func TestDataPlaneThroughHandoff(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	s, child, err := fdpass.Pair()
	require.NoError(t, err)
	defer s.Close()
	tm := startTaskManager(t, map[string]*fdpass.Sender{"job": s})
	ln, err := fdpass.Listen(child, tm.addr())
	require.NoError(t, err)

	producer, err := tcp.Listen(tcp.Config{Listener: ln, Logger: quiet})
	require.NoError(t, err)
	defer func() { require.NoError(t, producer.Close()) }()
	require.Equal(t, tm.addr(), producer.Addr())
	consumer, err := tcp.Listen(tcp.Config{Dial: fdpass.Dialer("job", nil), Logger: quiet})
	require.NoError(t, err)
	defer func() { require.NoError(t, consumer.Close()) }()

	k := network.ChannelKey{Job: "job", Attempt: 1, Edge: 1}
	out, err := tcp.Output[string](producer, k, codec.Of[string](), tcp.ChannelOptions{})
	require.NoError(t, err)
	notify := network.NewNotifier()
	in, err := tcp.Input[string](context.Background(), consumer, k, producer.Addr(), codec.Of[string](), notify, tcp.ChannelOptions{})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := out.Acquire(ctx)
	require.NoError(t, err)
	b.Kind = network.Records
	b.Recs = append(b.Recs, network.Rec[string]{V: "through", Ts: 1}, network.Rec[string]{V: "the handoff", Ts: 2})
	out.Send(b)

	for {
		if got, ok := in.Poll(); ok {
			require.Equal(t, network.Records, got.Kind)
			require.Equal(t, []network.Rec[string]{{V: "through", Ts: 1}, {V: "the handoff", Ts: 2}}, got.Recs)
			in.Recycle(got)
			break
		}
		select {
		case <-notify:
		case <-ctx.Done():
			t.Fatal("no batch crossed the handed-over connection")
		}
	}
	require.Empty(t, tm.errors())
	require.Equal(t, 1, producer.Conns(), "one connection, accepted through the Listener")
}
