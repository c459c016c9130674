package codec

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"unsafe"

	"github.com/tinylib/msgp/msgp"
)

// User override codecs (rules 2 and 3 of Of). They call the methods through *T (whose
// method set includes T's value methods) on the value in place. Because user code may
// retain its receiver, any type reaching these is encoded via heapCodec (see needsHeap).

// binaryAppenderInfo: uvarint(len) + AppendBinary output. AppendBinary appends to dst
// directly; we reserve one length byte and shift the payload only if it is >= 128 bytes.
func binaryAppenderInfo(t reflect.Type) *typeInfo {
	ti := &typeInfo{t: t, minSize: 1, userHook: true}
	ti.enc = func(dst []byte, p unsafe.Pointer) []byte {
		a := reflect.NewAt(t, p).Interface().(encoding.BinaryAppender)
		start := len(dst)
		out, err := a.AppendBinary(append(dst, 0))
		if err != nil {
			panic(&EncodeError{Type: t, Err: fmt.Errorf("AppendBinary: %w", err)})
		}
		return fixupLength(out, start)
	}
	ti.dec = binaryUnmarshalDec(t)
	return ti
}

// binaryMarshalerInfo: uvarint(len) + MarshalBinary output, for types that predate
// encoding.BinaryAppender (Go 1.24).
func binaryMarshalerInfo(t reflect.Type) *typeInfo {
	ti := &typeInfo{t: t, minSize: 1, userHook: true}
	ti.enc = func(dst []byte, p unsafe.Pointer) []byte {
		m := reflect.NewAt(t, p).Interface().(encoding.BinaryMarshaler)
		b, err := m.MarshalBinary()
		if err != nil {
			panic(&EncodeError{Type: t, Err: fmt.Errorf("MarshalBinary: %w", err)})
		}
		return append(appendUvarint(dst, uint64(len(b))), b...)
	}
	ti.dec = binaryUnmarshalDec(t)
	return ti
}

// fixupLength writes the uvarint length of out[start+1:] at out[start], where one byte was
// reserved, moving the payload if the length needs more than one byte.
func fixupLength(out []byte, start int) []byte {
	n := len(out) - start - 1
	k := uvarintLen(uint64(n))
	if k > 1 {
		out = slices.Grow(out, k-1)[:len(out)+k-1]
		copy(out[start+k:], out[start+1:start+1+n])
	}
	appendUvarint(out[start:start], uint64(n))
	return out
}

func binaryUnmarshalDec(t reflect.Type) decFn {
	errLen := fmt.Errorf("codec: decoding length of %v: %w", t, ErrCorrupt)
	return func(src []byte, p unsafe.Pointer) (int, error) {
		l, n := uvarint(src)
		if n == 0 || l > uint64(len(src)-n) {
			return 0, errLen
		}
		end := n + int(l)
		u := reflect.NewAt(t, p).Interface().(encoding.BinaryUnmarshaler)
		// The three-index slice stops a misbehaving UnmarshalBinary from appending into
		// the bytes that follow.
		if err := u.UnmarshalBinary(src[n:end:end]); err != nil {
			return 0, fmt.Errorf("codec: %v.UnmarshalBinary: %w: %w", t, ErrCorrupt, err)
		}
		return end, nil
	}
}

// msgpInfo: the MessagePack bytes as-is; msgp's UnmarshalMsg returns the unread rest, so
// no length prefix is needed.
func msgpInfo(t reflect.Type) *typeInfo {
	ti := &typeInfo{t: t, minSize: 1, userHook: true}
	ti.enc = func(dst []byte, p unsafe.Pointer) []byte {
		m := reflect.NewAt(t, p).Interface().(msgp.Marshaler)
		out, err := m.MarshalMsg(dst)
		if err != nil {
			panic(&EncodeError{Type: t, Err: fmt.Errorf("MarshalMsg: %w", err)})
		}
		return out
	}
	ti.dec = func(src []byte, p unsafe.Pointer) (int, error) {
		u := reflect.NewAt(t, p).Interface().(msgp.Unmarshaler)
		rest, err := u.UnmarshalMsg(src)
		if err != nil {
			return 0, fmt.Errorf("codec: %v.UnmarshalMsg: %w: %w", t, ErrCorrupt, err)
		}
		if len(rest) > len(src) {
			return 0, fmt.Errorf("codec: %v.UnmarshalMsg returned more bytes than it was given: %w", t, ErrCorrupt)
		}
		return len(src) - len(rest), nil
	}
	return ti
}
