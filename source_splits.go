package strom

import (
	"fmt"

	"github.com/strom-dev/strom/codec"
)

// The slice source's split codec (SplitCodec), so snapshots can store its
// readers' positions. A split is stored as its fields through package codec,
// as connector/file and connector/datagen store theirs; decoding checks the
// split fits the slice, so a snapshot restored into a changed program fails
// loudly.

var sliceSplitCodec = codec.Of[sliceSplit]()

// EncodeSplit implements SplitCodec.
func (s sliceSource[T]) EncodeSplit(sp Split) ([]byte, error) {
	p, ok := sp.(*sliceSplit)
	if !ok {
		return nil, fmt.Errorf("encoding split: want a slice split, got %T", sp)
	}
	return sliceSplitCodec.Append(nil, *p), nil
}

// DecodeSplit implements SplitCodec.
func (s sliceSource[T]) DecodeSplit(b []byte) (Split, error) {
	p, n, err := sliceSplitCodec.Decode(b)
	if err == nil && n != len(b) {
		err = fmt.Errorf("%d bytes after the split", len(b)-n)
	}
	if err != nil {
		return nil, fmt.Errorf("decoding slice split: %w", err)
	}
	if p.Start < 0 || p.Start > p.End || p.Pos < p.Start || p.Pos > p.End || p.End > len(s.data) {
		return nil, fmt.Errorf("slice split [%d:%d] at %d does not fit the slice of %d elements", p.Start, p.End, p.Pos, len(s.data))
	}
	return &p, nil
}

// notReplayable: an iterator is read once; nothing can restart it at a
// position, so a job reading one cannot be snapshotted.
func (s iterSource[T]) notReplayable() string {
	return "FromIterator reads an iterator, which cannot be replayed from a position (use FromSlice, datagen.FromGenerator or a Source with a SplitCodec for a job that snapshots its state)"
}
