package codec

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"unsafe"
)

// Order-preserving codecs, for keys of a sorted store (LSM state backends, range scans
// over event time). For every pair of values a, b of the codec's type:
//
//	bytes.Compare(Append(nil, a), Append(nil, b)) == cmp.Compare(a, b)
//
// and the property survives concatenation: if a composite key is the concatenation of
// ordered encodings (say OrderedString then OrderedInt64), the bytewise order of the
// composite is the lexicographic order of the tuples. That is why variable-length values
// use an escape/terminator scheme instead of a length prefix: a length prefix would sort
// "b" before "aa". Varints are not order-preserving either, which is why these are
// separate from the default codecs.
//
// These encodings are not interchangeable with the default ones (Of[int64] uses a
// varint); pick one per key schema and keep it.

type orderedInt64Codec struct{}

// OrderedInt64 encodes an int64 as 8 big-endian bytes with the sign bit flipped, so that
// negative numbers sort before positive ones.
func OrderedInt64() Codec[int64] { return orderedInt64Codec{} }

func (orderedInt64Codec) Append(dst []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(v)^(1<<63))
}

func (orderedInt64Codec) Decode(src []byte) (int64, int, error) {
	if len(src) < 8 {
		return 0, 0, errOrderedInt64
	}
	return int64(binary.BigEndian.Uint64(src) ^ (1 << 63)), 8, nil
}

type orderedUint64Codec struct{}

// OrderedUint64 encodes a uint64 as 8 big-endian bytes.
func OrderedUint64() Codec[uint64] { return orderedUint64Codec{} }

func (orderedUint64Codec) Append(dst []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, v)
}

func (orderedUint64Codec) Decode(src []byte) (uint64, int, error) {
	if len(src) < 8 {
		return 0, 0, errOrderedUint64
	}
	return binary.BigEndian.Uint64(src), 8, nil
}

type orderedFloat64Codec struct{}

// OrderedFloat64 encodes a float64 as 8 big-endian bytes of its IEEE 754 bits, with all
// bits flipped for negative numbers and only the sign bit flipped for positive ones. The
// byte order is the IEEE 754 totalOrder: -NaN < -Inf < … < -0 < +0 < … < +Inf < +NaN.
// It agrees with cmp.Compare except that -0 sorts before +0 (cmp.Compare: equal) and
// NaNs with the sign bit clear sort last (cmp.Compare: first). Decoding is bit-exact.
func OrderedFloat64() Codec[float64] { return orderedFloat64Codec{} }

func (orderedFloat64Codec) Append(dst []byte, v float64) []byte {
	b := math.Float64bits(v)
	if b&(1<<63) != 0 {
		b = ^b
	} else {
		b |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(dst, b)
}

func (orderedFloat64Codec) Decode(src []byte) (float64, int, error) {
	if len(src) < 8 {
		return 0, 0, errOrderedFloat64
	}
	b := binary.BigEndian.Uint64(src)
	if b&(1<<63) != 0 {
		b &^= 1 << 63
	} else {
		b = ^b
	}
	return math.Float64frombits(b), 8, nil
}

// Escape scheme for OrderedString and OrderedBytes (the one used by CockroachDB and
// FoundationDB-style tuple encodings): every 0x00 byte of the value is written as
// 0x00 0xFF, and the value is terminated by 0x00 0x01. Why it sorts correctly:
//   - Where two values first differ, their encodings first differ at the same place and
//     in the same direction (an escaped 0x00 still starts with 0x00, the smallest byte).
//   - If a is a proper prefix of b, a's terminator 0x00 0x01 meets b's next byte c: if
//     c > 0 then 0x00 < c; if c == 0 it is escaped as 0x00 0xFF and 0x01 < 0xFF. So a < b.
//   - The comparison is therefore decided at or before a's terminator, and bytes of any
//     following key field only matter when the values are equal.
//
// Cost: len+2 bytes for values without zero bytes (the usual case for text).
const (
	orderedEscape    = 0x00
	orderedEscaped00 = 0xFF
	orderedTerm      = 0x01
)

func appendOrdered(dst []byte, s string) []byte {
	for {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			break
		}
		dst = append(dst, s[:i]...)
		dst = append(dst, orderedEscape, orderedEscaped00)
		s = s[i+1:]
	}
	dst = append(dst, s...)
	return append(dst, orderedEscape, orderedTerm)
}

// decodeOrdered returns the unescaped value and the bytes consumed, or n == 0.
// In the common case (no escaped zero bytes) raw aliases src and the caller copies once.
func decodeOrdered(src []byte) (raw []byte, escaped bool, n int) {
	i := bytes.IndexByte(src, 0)
	if i < 0 || i+1 >= len(src) {
		return nil, false, 0
	}
	if src[i+1] == orderedTerm {
		return src[:i], false, i + 2
	}
	// Slow path: there are escaped zeros; build a fresh buffer.
	out := make([]byte, 0, len(src))
	pos := 0
	for {
		i := bytes.IndexByte(src[pos:], 0)
		if i < 0 || pos+i+1 >= len(src) {
			return nil, false, 0
		}
		out = append(out, src[pos:pos+i]...)
		switch src[pos+i+1] {
		case orderedTerm:
			return out, true, pos + i + 2
		case orderedEscaped00:
			out = append(out, 0)
			pos += i + 2
		default:
			return nil, false, 0
		}
	}
}

type orderedStringCodec struct{}

// OrderedString encodes a string so that bytewise order equals Go's string order (byte-
// wise, i.e. Unicode code point order for valid UTF-8), also when followed by further key
// fields; see the escape scheme above.
func OrderedString() Codec[string] { return orderedStringCodec{} }

func (orderedStringCodec) Append(dst []byte, v string) []byte { return appendOrdered(dst, v) }

func (orderedStringCodec) Decode(src []byte) (string, int, error) {
	raw, _, n := decodeOrdered(src)
	if n == 0 {
		return "", 0, errOrderedString
	}
	return string(raw), n, nil
}

type orderedBytesCodec struct{}

// OrderedBytes is OrderedString for []byte. nil and empty encode identically and decode
// as an empty, non-nil slice.
func OrderedBytes() Codec[[]byte] { return orderedBytesCodec{} }

func (orderedBytesCodec) Append(dst []byte, v []byte) []byte {
	// Read-only view of v as a string, to share appendOrdered without copying.
	return appendOrdered(dst, unsafe.String(unsafe.SliceData(v), len(v)))
}

func (orderedBytesCodec) Decode(src []byte) ([]byte, int, error) {
	raw, escaped, n := decodeOrdered(src)
	if n == 0 {
		return nil, 0, errOrderedBytes
	}
	if escaped {
		return raw, n, nil
	}
	return append([]byte{}, raw...), n, nil
}

var (
	errOrderedInt64   = corruptErr("ordered int64")
	errOrderedUint64  = corruptErr("ordered uint64")
	errOrderedFloat64 = corruptErr("ordered float64")
	errOrderedString  = corruptErr("ordered string")
	errOrderedBytes   = corruptErr("ordered []byte")
)
