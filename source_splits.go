package strom

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Split codecs of the built-in sources (SplitCodec), so snapshots can store
// their readers' positions. Each encodes a split as a few varints (and the
// file split its path); decoding checks the split is one the source can
// read, so a snapshot restored into a changed program fails loudly.

// errSplitBytes is wrapped by every error for split bytes that do not
// decode.
var errSplitBytes = errors.New("corrupt or truncated split")

// splitReader decodes the varints of one encoded split.
type splitReader struct {
	b   []byte
	err error
}

func (r *splitReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errSplitBytes
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *splitReader) string() string {
	n := r.varint()
	if r.err != nil {
		return ""
	}
	if n < 0 || n > int64(len(r.b)) {
		r.err = errSplitBytes
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// done reports a decoding error, or bytes left over.
func (r *splitReader) done(what string) error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d bytes after the split", errSplitBytes, len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("decoding %s: %w", what, r.err)
	}
	return nil
}

func wrongSplit(want string, s Split) error {
	return fmt.Errorf("encoding split: want a %s, got %T", want, s)
}

// EncodeSplit implements SplitCodec.
func (s sliceSource[T]) EncodeSplit(sp Split) ([]byte, error) {
	p, ok := sp.(*sliceSplit)
	if !ok {
		return nil, wrongSplit("slice split", sp)
	}
	b := binary.AppendVarint(nil, int64(p.Start))
	b = binary.AppendVarint(b, int64(p.End))
	return binary.AppendVarint(b, int64(p.Pos)), nil
}

// DecodeSplit implements SplitCodec.
func (s sliceSource[T]) DecodeSplit(b []byte) (Split, error) {
	r := splitReader{b: b}
	start, end, pos := r.varint(), r.varint(), r.varint()
	if err := r.done("slice split"); err != nil {
		return nil, err
	}
	if start < 0 || start > end || pos < start || pos > end || end > int64(len(s.data)) {
		return nil, fmt.Errorf("slice split [%d:%d] at %d does not fit the slice of %d elements", start, end, pos, len(s.data))
	}
	return &sliceSplit{Start: int(start), End: int(end), Pos: int(pos)}, nil
}

// notReplayable: an iterator is read once; nothing can restart it at a
// position, so a job reading one cannot be snapshotted.
func (s iterSource[T]) notReplayable() string {
	return "FromIterator reads an iterator, which cannot be replayed from a position (use FromSlice, datagen.FromGenerator or a Source with a SplitCodec for a job that snapshots its state)"
}
