package tcp

import (
	"context"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/network"
)

// Ops opens channels of one record type for a caller that does not know
// the type: the task builder, which is not generic, wires tasks through
// runtime.TypeOps, and a TypeOps of T can hand out OpsFor[T] for the
// channels whose other end is in another process. The values of type any
// are *network.Channel[T], as runtime.TypeOps expects.
type Ops interface {
	// Output is Output[T] with the Ops' codec.
	Output(e *Endpoint, key network.ChannelKey, opts ChannelOptions) (any, error)
	// Input is Input[T] with the Ops' codec.
	Input(ctx context.Context, e *Endpoint, key network.ChannelKey, producer string, notify network.Notifier, opts ChannelOptions) (any, error)
}

// OpsFor returns the Ops of T, framing records with c (nil: codec.Of[T],
// which panics for a type it cannot encode).
func OpsFor[T any](c codec.Codec[T]) Ops {
	if c == nil {
		c = codec.Of[T]()
	}
	return ops[T]{c}
}

type ops[T any] struct{ c codec.Codec[T] }

func (o ops[T]) Output(e *Endpoint, key network.ChannelKey, opts ChannelOptions) (any, error) {
	ch, err := Output(e, key, o.c, opts)
	if err != nil {
		return nil, err
	}
	return ch, nil
}

func (o ops[T]) Input(ctx context.Context, e *Endpoint, key network.ChannelKey, producer string, notify network.Notifier, opts ChannelOptions) (any, error) {
	ch, err := Input(ctx, e, key, producer, o.c, notify, opts)
	if err != nil {
		return nil, err
	}
	return ch, nil
}
