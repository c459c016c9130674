package file

import (
	"fmt"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/codec"
)

// A file split is stored as its fields through the codec package, so a
// snapshot keeps the path, the byte offset of the next line and the line
// number (for errors after a restore).
var splitCodec = codec.Of[FileSplit]()

// EncodeSplit implements strom.SplitCodec: a file source's reader positions
// can be snapshotted and restored.
func (s LineSource[T]) EncodeSplit(sp strom.Split) ([]byte, error) {
	f, ok := sp.(*FileSplit)
	if !ok {
		return nil, fmt.Errorf("encoding split: want a *file.FileSplit, got %T", sp)
	}
	return splitCodec.Append(nil, *f), nil
}

// DecodeSplit implements strom.SplitCodec.
func (s LineSource[T]) DecodeSplit(b []byte) (strom.Split, error) {
	f, n, err := splitCodec.Decode(b)
	if err == nil && n != len(b) {
		err = fmt.Errorf("%d bytes after the split", len(b)-n)
	}
	if err != nil {
		return nil, fmt.Errorf("decoding file split: %w", err)
	}
	if f.Offset < 0 || f.Line < 0 {
		return nil, fmt.Errorf("file split %s: negative offset %d or line %d", f.Path, f.Offset, f.Line)
	}
	return &f, nil
}
