package statebackend

import (
	"encoding/binary"
	"fmt"
	"reflect"

	"github.com/strom-dev/strom/codec"
)

// Encoding helpers shared by the states' snapshot code.

// maxZeroWidth bounds the element count of data whose elements may encode
// to zero bytes (struct{} values), where the remaining input gives no bound.
const maxZeroWidth = 1 << 24

// decoder reads snapshot data. Every method returns an error wrapping
// ErrCorruptSnapshot on bad input; none panics.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) rest() int { return len(d.b) - d.off }

func (d *decoder) byte() (byte, error) {
	if d.off >= len(d.b) {
		return 0, corruptf("truncated at byte %d", d.off)
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

func (d *decoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		return 0, corruptf("bad or truncated varint at byte %d", d.off)
	}
	d.off += n
	return v, nil
}

func (d *decoder) varint() (int64, error) {
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		return 0, corruptf("bad or truncated varint at byte %d", d.off)
	}
	d.off += n
	return v, nil
}

// count reads an element count and checks it against the remaining input,
// given the least number of bytes an element takes (0 for elements that
// may be empty).
func (d *decoder) count(minSize int) (int, error) {
	at := d.off
	v, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	limit := uint64(maxZeroWidth) + uint64(d.rest())
	if minSize > 0 {
		limit = uint64(d.rest() / minSize)
	}
	if v > limit {
		return 0, corruptf("count %d at byte %d exceeds what %d remaining bytes can hold", v, at, d.rest())
	}
	return int(v), nil
}

// bytes reads a length-prefixed byte string (aliasing the input).
func (d *decoder) bytes() ([]byte, error) {
	at := d.off
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(d.rest()) {
		return nil, corruptf("length %d at byte %d exceeds the %d remaining bytes", n, at, d.rest())
	}
	b := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

func (d *decoder) string() (string, error) {
	b, err := d.bytes()
	return string(b), err
}

// decodeWith decodes one value with c.
func decodeWith[T any](d *decoder, c codec.Codec[T]) (T, error) {
	v, n, err := c.Decode(d.b[d.off:])
	if err != nil {
		var zero T
		return zero, corruptf("at byte %d: %w", d.off, err)
	}
	if n < 0 || n > d.rest() {
		var zero T
		return zero, corruptf("at byte %d: codec %T consumed %d of %d bytes", d.off, c, n, d.rest())
	}
	d.off += n
	return v, nil
}

// lazyCodec is a state's codec for one of its types: the override, or
// codec.For[T], resolved once (when the state is registered, or at the
// first snapshot). A type without a codec is an error of the snapshot, not
// of the job: jobs without checkpoints keep working.
type lazyCodec[T any] struct {
	// make builds the codec; nil means the override or codec.For[T].
	make     func() (codec.Codec[T], error)
	override codec.Codec[T]
	what     string // "value", "namespace", … for error messages
	c        codec.Codec[T]
	min      int // 0 if an encoding may be empty, else 1
	err      error
	done     bool
}

func (l *lazyCodec[T]) set(c codec.Codec[T]) {
	l.override, l.c, l.err, l.done = c, nil, nil, false
}

func (l *lazyCodec[T]) setMake(fn func() (codec.Codec[T], error)) {
	l.make, l.c, l.err, l.done = fn, nil, nil, false
}

func (l *lazyCodec[T]) get() (codec.Codec[T], error) {
	if !l.done {
		l.done = true
		switch {
		case l.override != nil:
			l.c = l.override
		case l.make != nil:
			l.c, l.err = l.make()
		default:
			l.c, l.err = codecFor[T](l.what)
		}
		if l.err == nil {
			l.min = minSize(l.c)
		}
	}
	return l.c, l.err
}

// codecFor is codec.For[T] with an error that names the role and the type.
func codecFor[T any](what string) (codec.Codec[T], error) {
	c, err := codec.For[T]()
	if err != nil {
		if what == "" {
			what = "state"
		}
		return nil, fmt.Errorf("no codec for %s type %v (set one on the state descriptor): %w", what, reflect.TypeFor[T](), err)
	}
	return c, nil
}

// minSize is 1 if every encoding of c takes at least a byte, else 0. Codecs
// are prefix-free, so if the zero value encodes to nothing every value
// does (struct{}).
func minSize[T any](c codec.Codec[T]) (n int) {
	defer func() {
		if recover() != nil {
			n = 0
		}
	}()
	var zero T
	if len(c.Append(nil, zero)) == 0 {
		return 0
	}
	return 1
}

// typeTag formats a state's type tag, e.g. value<string,int64>.
func typeTag(kind string, types ...reflect.Type) string {
	s := kind + "<"
	for i, t := range types {
		if i > 0 {
			s += ","
		}
		s += t.String()
	}
	return s + ">"
}
