package datagen

import (
	"fmt"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/codec"
)

// A generator split is its next index and stride, stored through the codec
// package.
var splitCodec = codec.Of[GeneratorSplit]()

// EncodeSplit implements strom.SplitCodec: a generator's reader positions
// can be snapshotted and restored.
func (s genSource[T]) EncodeSplit(sp strom.Split) ([]byte, error) {
	g, ok := sp.(*GeneratorSplit)
	if !ok {
		return nil, fmt.Errorf("encoding split: want a *datagen.GeneratorSplit, got %T", sp)
	}
	return splitCodec.Append(nil, *g), nil
}

// DecodeSplit implements strom.SplitCodec.
func (s genSource[T]) DecodeSplit(b []byte) (strom.Split, error) {
	g, n, err := splitCodec.Decode(b)
	if err == nil && n != len(b) {
		err = fmt.Errorf("%d bytes after the split", len(b)-n)
	}
	if err != nil {
		return nil, fmt.Errorf("decoding generator split: %w", err)
	}
	if g.Next < 0 || g.Stride < 1 {
		return nil, fmt.Errorf("generator split at %d with stride %d is not one a generator makes", g.Next, g.Stride)
	}
	return &g, nil
}
