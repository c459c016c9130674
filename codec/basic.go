package codec

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Hand-written codecs for the basic types. They are empty structs, so returning them in a
// Codec interface does not allocate, and they are trivially safe for concurrent use.
//
// Integers use varints (zigzag for signed types): in stream processing most integers are
// ids, counts, prices and millisecond timestamps that are far below 2^63, so a varint is
// 1–6 bytes instead of 8, which matters for state size and network volume, while the
// measured cost is about a nanosecond per value (see "Record codecs: measured" in the
// design doc and BenchmarkInt64). FixedInt64/FixedUint64 are available for values that
// are uniformly large (hashes, random ids). int8/uint8 are one raw byte; floats are fixed
// little-endian IEEE 754 (varints do not help on mantissa bits).

// corruptErr builds the static error returned by a hand-written codec, so that the error
// path does not allocate either.
func corruptErr(what string) error {
	return fmt.Errorf("codec: decoding %s: %w", what, ErrCorrupt)
}

var (
	errBool       = corruptErr("bool")
	errInt        = corruptErr("int")
	errInt8       = corruptErr("int8")
	errInt16      = corruptErr("int16")
	errInt32      = corruptErr("int32")
	errInt64      = corruptErr("int64")
	errUint       = corruptErr("uint")
	errUint8      = corruptErr("uint8")
	errUint16     = corruptErr("uint16")
	errUint32     = corruptErr("uint32")
	errUint64     = corruptErr("uint64")
	errUintptr    = corruptErr("uintptr")
	errFloat32    = corruptErr("float32")
	errFloat64    = corruptErr("float64")
	errComplex64  = corruptErr("complex64")
	errComplex128 = corruptErr("complex128")
	errString     = corruptErr("string")
	errBytes      = corruptErr("[]byte")
	errTime       = corruptErr("time.Time")
	errDuration   = corruptErr("time.Duration")
	errFixed64    = corruptErr("fixed 64-bit integer")
)

type boolCodec struct{}

// Bool returns the codec for bool: one byte, 0 or 1 (anything else is corrupt).
func Bool() Codec[bool] { return boolCodec{} }

func (boolCodec) Append(dst []byte, v bool) []byte { return appendBool(dst, v) }
func (boolCodec) Decode(src []byte) (bool, int, error) {
	v, n := decodeBool(src)
	if n == 0 {
		return false, 0, errBool
	}
	return v, n, nil
}

type int64Codec struct{}

// Int64 returns the codec for int64: zigzag varint (1–10 bytes).
func Int64() Codec[int64] { return int64Codec{} }

func (int64Codec) Append(dst []byte, v int64) []byte { return appendVarint(dst, v) }
func (int64Codec) Decode(src []byte) (int64, int, error) {
	v, n := varint(src)
	if n == 0 {
		return 0, 0, errInt64
	}
	return v, n, nil
}

type intCodec struct{}

// Int returns the codec for int: zigzag varint, identical bytes to Int64 so the encoding
// does not depend on the platform's int size (a 32-bit decoder rejects values that do
// not fit).
func Int() Codec[int] { return intCodec{} }

func (intCodec) Append(dst []byte, v int) []byte { return appendVarint(dst, int64(v)) }
func (intCodec) Decode(src []byte) (int, int, error) {
	v, n := varint(src)
	if n == 0 || int64(int(v)) != v {
		return 0, 0, errInt
	}
	return int(v), n, nil
}

type int32Codec struct{}

// Int32 returns the codec for int32: zigzag varint (1–5 bytes), range-checked on decode.
func Int32() Codec[int32] { return int32Codec{} }

func (int32Codec) Append(dst []byte, v int32) []byte { return appendVarint(dst, int64(v)) }
func (int32Codec) Decode(src []byte) (int32, int, error) {
	v, n := varint(src)
	if n == 0 || v < math.MinInt32 || v > math.MaxInt32 {
		return 0, 0, errInt32
	}
	return int32(v), n, nil
}

type int16Codec struct{}

// Int16 returns the codec for int16: zigzag varint (1–3 bytes), range-checked on decode.
func Int16() Codec[int16] { return int16Codec{} }

func (int16Codec) Append(dst []byte, v int16) []byte { return appendVarint(dst, int64(v)) }
func (int16Codec) Decode(src []byte) (int16, int, error) {
	v, n := varint(src)
	if n == 0 || v < math.MinInt16 || v > math.MaxInt16 {
		return 0, 0, errInt16
	}
	return int16(v), n, nil
}

type int8Codec struct{}

// Int8 returns the codec for int8: one raw byte.
func Int8() Codec[int8] { return int8Codec{} }

func (int8Codec) Append(dst []byte, v int8) []byte { return append(dst, byte(v)) }
func (int8Codec) Decode(src []byte) (int8, int, error) {
	if len(src) == 0 {
		return 0, 0, errInt8
	}
	return int8(src[0]), 1, nil
}

type uint64Codec struct{}

// Uint64 returns the codec for uint64: uvarint (1–10 bytes).
func Uint64() Codec[uint64] { return uint64Codec{} }

func (uint64Codec) Append(dst []byte, v uint64) []byte { return appendUvarint(dst, v) }
func (uint64Codec) Decode(src []byte) (uint64, int, error) {
	v, n := uvarint(src)
	if n == 0 {
		return 0, 0, errUint64
	}
	return v, n, nil
}

type uintCodec struct{}

// Uint returns the codec for uint: uvarint, same bytes as Uint64.
func Uint() Codec[uint] { return uintCodec{} }

func (uintCodec) Append(dst []byte, v uint) []byte { return appendUvarint(dst, uint64(v)) }
func (uintCodec) Decode(src []byte) (uint, int, error) {
	v, n := uvarint(src)
	if n == 0 || v > math.MaxUint {
		return 0, 0, errUint
	}
	return uint(v), n, nil
}

type uintptrCodec struct{}

// Uintptr returns the codec for uintptr: uvarint, same bytes as Uint64.
func Uintptr() Codec[uintptr] { return uintptrCodec{} }

func (uintptrCodec) Append(dst []byte, v uintptr) []byte { return appendUvarint(dst, uint64(v)) }
func (uintptrCodec) Decode(src []byte) (uintptr, int, error) {
	v, n := uvarint(src)
	if n == 0 || (bits.UintSize == 32 && v > math.MaxUint32) {
		return 0, 0, errUintptr
	}
	return uintptr(v), n, nil
}

type uint32Codec struct{}

// Uint32 returns the codec for uint32: uvarint (1–5 bytes), range-checked on decode.
func Uint32() Codec[uint32] { return uint32Codec{} }

func (uint32Codec) Append(dst []byte, v uint32) []byte { return appendUvarint(dst, uint64(v)) }
func (uint32Codec) Decode(src []byte) (uint32, int, error) {
	v, n := uvarint(src)
	if n == 0 || v > math.MaxUint32 {
		return 0, 0, errUint32
	}
	return uint32(v), n, nil
}

type uint16Codec struct{}

// Uint16 returns the codec for uint16: uvarint (1–3 bytes), range-checked on decode.
func Uint16() Codec[uint16] { return uint16Codec{} }

func (uint16Codec) Append(dst []byte, v uint16) []byte { return appendUvarint(dst, uint64(v)) }
func (uint16Codec) Decode(src []byte) (uint16, int, error) {
	v, n := uvarint(src)
	if n == 0 || v > math.MaxUint16 {
		return 0, 0, errUint16
	}
	return uint16(v), n, nil
}

type uint8Codec struct{}

// Uint8 returns the codec for uint8 (byte): one raw byte.
func Uint8() Codec[uint8] { return uint8Codec{} }

func (uint8Codec) Append(dst []byte, v uint8) []byte { return append(dst, v) }
func (uint8Codec) Decode(src []byte) (uint8, int, error) {
	if len(src) == 0 {
		return 0, 0, errUint8
	}
	return src[0], 1, nil
}

type fixedInt64Codec struct{}

// FixedInt64 returns a fixed-width codec for int64: 8 bytes little-endian. Use it for
// values that are uniformly large (hashes, random 64-bit ids) where a varint would take
// 9–10 bytes. It is not order-preserving; see OrderedInt64 for keys.
func FixedInt64() Codec[int64] { return fixedInt64Codec{} }

func (fixedInt64Codec) Append(dst []byte, v int64) []byte {
	return binary.LittleEndian.AppendUint64(dst, uint64(v))
}
func (fixedInt64Codec) Decode(src []byte) (int64, int, error) {
	if len(src) < 8 {
		return 0, 0, errFixed64
	}
	return int64(binary.LittleEndian.Uint64(src)), 8, nil
}

type fixedUint64Codec struct{}

// FixedUint64 returns a fixed-width codec for uint64: 8 bytes little-endian.
func FixedUint64() Codec[uint64] { return fixedUint64Codec{} }

func (fixedUint64Codec) Append(dst []byte, v uint64) []byte {
	return binary.LittleEndian.AppendUint64(dst, v)
}
func (fixedUint64Codec) Decode(src []byte) (uint64, int, error) {
	if len(src) < 8 {
		return 0, 0, errFixed64
	}
	return binary.LittleEndian.Uint64(src), 8, nil
}

type float64Codec struct{}

// Float64 returns the codec for float64: 8 bytes little-endian IEEE 754 (bit-exact,
// including NaN payloads and the sign of zero).
func Float64() Codec[float64] { return float64Codec{} }

func (float64Codec) Append(dst []byte, v float64) []byte { return appendFloat64(dst, v) }
func (float64Codec) Decode(src []byte) (float64, int, error) {
	v, n := decodeFloat64(src)
	if n == 0 {
		return 0, 0, errFloat64
	}
	return v, n, nil
}

type float32Codec struct{}

// Float32 returns the codec for float32: 4 bytes little-endian IEEE 754.
func Float32() Codec[float32] { return float32Codec{} }

func (float32Codec) Append(dst []byte, v float32) []byte { return appendFloat32(dst, v) }
func (float32Codec) Decode(src []byte) (float32, int, error) {
	v, n := decodeFloat32(src)
	if n == 0 {
		return 0, 0, errFloat32
	}
	return v, n, nil
}

type complex128Codec struct{}

// Complex128 returns the codec for complex128: real then imaginary part as Float64.
func Complex128() Codec[complex128] { return complex128Codec{} }

func (complex128Codec) Append(dst []byte, v complex128) []byte {
	return appendFloat64(appendFloat64(dst, real(v)), imag(v))
}
func (complex128Codec) Decode(src []byte) (complex128, int, error) {
	if len(src) < 16 {
		return 0, 0, errComplex128
	}
	r, _ := decodeFloat64(src)
	i, _ := decodeFloat64(src[8:])
	return complex(r, i), 16, nil
}

type complex64Codec struct{}

// Complex64 returns the codec for complex64: real then imaginary part as Float32.
func Complex64() Codec[complex64] { return complex64Codec{} }

func (complex64Codec) Append(dst []byte, v complex64) []byte {
	return appendFloat32(appendFloat32(dst, real(v)), imag(v))
}
func (complex64Codec) Decode(src []byte) (complex64, int, error) {
	if len(src) < 8 {
		return 0, 0, errComplex64
	}
	r, _ := decodeFloat32(src)
	i, _ := decodeFloat32(src[4:])
	return complex(r, i), 8, nil
}

type stringCodec struct{}

// String returns the codec for string: uvarint length + bytes. Decode copies the bytes
// (one allocation for a non-empty string) because src must not be retained.
func String() Codec[string] { return stringCodec{} }

func (stringCodec) Append(dst []byte, v string) []byte { return appendString(dst, v) }
func (stringCodec) Decode(src []byte) (string, int, error) {
	v, n := decodeString(src)
	if n == 0 {
		return "", 0, errString
	}
	return v, n, nil
}

type bytesCodec struct{}

// Bytes returns the codec for []byte: 0 for nil, else uvarint(len+1) + bytes, so nil and
// empty slices round-trip distinctly. Decode copies the bytes out of src.
func Bytes() Codec[[]byte] { return bytesCodec{} }

func (bytesCodec) Append(dst []byte, v []byte) []byte { return appendBytes(dst, v) }
func (bytesCodec) Decode(src []byte) ([]byte, int, error) {
	v, n := decodeBytes(src)
	if n == 0 {
		return nil, 0, errBytes
	}
	return v, n, nil
}

type timeCodec struct{}

// Time returns the codec for time.Time: varint Unix seconds, uvarint nanoseconds with a
// zone flag, and the zone offset for non-UTC times (typically 6–11 bytes). Monotonic
// clock readings and zone names are dropped; compare decoded times with Time.Equal.
func Time() Codec[time.Time] { return timeCodec{} }

func (timeCodec) Append(dst []byte, v time.Time) []byte { return appendTime(dst, v) }
func (timeCodec) Decode(src []byte) (time.Time, int, error) {
	v, n := decodeTime(src)
	if n == 0 {
		return time.Time{}, 0, errTime
	}
	return v, n, nil
}

type durationCodec struct{}

// Duration returns the codec for time.Duration: zigzag varint nanoseconds, like Int64.
func Duration() Codec[time.Duration] { return durationCodec{} }

func (durationCodec) Append(dst []byte, v time.Duration) []byte {
	return appendVarint(dst, int64(v))
}
func (durationCodec) Decode(src []byte) (time.Duration, int, error) {
	v, n := varint(src)
	if n == 0 {
		return 0, 0, errDuration
	}
	return time.Duration(v), n, nil
}
