package tcp

import (
	"context"
	"fmt"

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

// OpsFor returns the Ops of T, framing records with c; nil means the
// default codec (codec.For), and a type it cannot encode makes Output and
// Input return its error (a deploy that fails clearly, not a panic).
func OpsFor[T any](c codec.Codec[T]) Ops { return ops[T]{c} }

type ops[T any] struct{ c codec.Codec[T] }

func (o ops[T]) codec() (codec.Codec[T], error) {
	if o.c != nil {
		return o.c, nil
	}
	return codec.For[T]()
}

func (o ops[T]) Output(e *Endpoint, key network.ChannelKey, opts ChannelOptions) (any, error) {
	c, err := o.codec()
	if err != nil {
		return nil, fmt.Errorf("data plane: output channel %v: %w", key, err)
	}
	ch, err := Output(e, key, c, opts)
	if err != nil {
		return nil, err
	}
	return ch, nil
}

func (o ops[T]) Input(ctx context.Context, e *Endpoint, key network.ChannelKey, producer string, notify network.Notifier, opts ChannelOptions) (any, error) {
	c, err := o.codec()
	if err != nil {
		return nil, fmt.Errorf("data plane: input channel %v: %w", key, err)
	}
	ch, err := Input(ctx, e, key, producer, c, notify, opts)
	if err != nil {
		return nil, err
	}
	return ch, nil
}
