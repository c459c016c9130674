package codec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

type jsonCodec[T any] struct{}

// JSON returns an encoding/json codec for T, for state that people want to read (debug
// dumps, savepoints inspected by hand). Each value is written as compact JSON followed by
// '\n' — the newline makes concatenated values self-delimiting (two numbers would
// otherwise run together) and turns a state dump into JSON Lines. HTML characters are not
// escaped. It is several times slower than Of and allocates; see the design doc.
//
// Append panics with an *EncodeError if json.Marshal fails (NaN/Inf floats, channels,
// cycles…). Decode consumes exactly one value and its newline; unknown fields are
// ignored (encoding/json's default), so records can gain fields.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

func (jsonCodec[T]) Append(dst []byte, v T) []byte {
	buf := bytes.NewBuffer(dst)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // Encode writes nothing on error
		panic(&EncodeError{Type: reflect.TypeFor[T](), Err: err})
	}
	return buf.Bytes()
}

func (jsonCodec[T]) Decode(src []byte) (T, int, error) {
	// Compact JSON never contains a raw newline (json.Marshal escapes it inside strings),
	// so the first '\n' ends the value and json.Unmarshal can be used on exactly it.
	end := bytes.IndexByte(src, '\n')
	if end < 0 {
		var zero T
		return zero, 0, fmt.Errorf("codec: decoding JSON %v: no terminating newline: %w", reflect.TypeFor[T](), ErrCorrupt)
	}
	var v T
	if err := json.Unmarshal(src[:end], &v); err != nil {
		var zero T
		return zero, 0, fmt.Errorf("codec: decoding JSON %v: %w: %w", reflect.TypeFor[T](), ErrCorrupt, err)
	}
	return v, end + 1, nil
}

type cborCodec[T any] struct{}

// CBOR returns a github.com/fxamacker/cbor codec for T: a standard, self-describing
// binary format (RFC 8949) that other languages can read, with deterministic ("Core
// Deterministic Encoding") map ordering so equal values give equal bytes. time.Time is
// encoded as an RFC 3339 string with nanoseconds (the library default, Unix seconds,
// drops sub-second precision). Struct fields are keyed by name, which makes it tolerant
// to field reordering/addition but larger and slower than Of.
//
// Append panics with an *EncodeError if the value cannot be encoded. Decode enforces the
// library's default limits (nesting depth 32, 131072 elements per array/map), which guard
// against hostile input.
func CBOR[T any]() Codec[T] { return cborCodec[T]{} }

var cborModes = sync.OnceValues(func() (cbor.UserBufferEncMode, cbor.DecMode) {
	eo := cbor.CoreDetEncOptions()
	eo.Time = cbor.TimeRFC3339Nano
	em, err := eo.UserBufferEncMode()
	if err != nil {
		panic(fmt.Sprintf("codec: building CBOR encoding mode: %v", err))
	}
	dm, err := cbor.DecOptions{}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("codec: building CBOR decoding mode: %v", err))
	}
	return em, dm
})

func (cborCodec[T]) Append(dst []byte, v T) []byte {
	em, _ := cborModes()
	buf := bytes.NewBuffer(dst)
	if err := em.MarshalToBuffer(v, buf); err != nil {
		panic(&EncodeError{Type: reflect.TypeFor[T](), Err: err})
	}
	return buf.Bytes()
}

func (cborCodec[T]) Decode(src []byte) (T, int, error) {
	_, dm := cborModes()
	var v T
	rest, err := dm.UnmarshalFirst(src, &v)
	if err != nil {
		var zero T
		return zero, 0, fmt.Errorf("codec: decoding CBOR %v: %w: %w", reflect.TypeFor[T](), ErrCorrupt, err)
	}
	return v, len(src) - len(rest), nil
}
