package tcp

import (
	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/network"
)

// FrameSize is the encoded size of b: the benchmarks' bytes per batch.
func FrameSize[T any](b *network.Batch[T], c codec.Codec[T]) int {
	return len(appendBatch(nil, 1, b, false, c))
}
