package codec

import (
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"time"
	"unsafe"
)

// encodeOps is the hot loop of every compiled struct and primitive: one switch per field
// (compiled to a jump table), no reflection, no interface calls; only opCall fields
// (slices, maps, pointers, arrays, user hooks) go through a func value.
func encodeOps(ops []op, dst []byte, p unsafe.Pointer) []byte {
	for i := range ops {
		o := &ops[i]
		fp := unsafe.Add(p, o.off)
		switch o.kind {
		case opInt64:
			dst = appendVarint(dst, *(*int64)(fp))
		case opString:
			dst = appendString(dst, *(*string)(fp))
		case opInt:
			dst = appendVarint(dst, int64(*(*int)(fp)))
		case opFloat64:
			dst = appendFloat64(dst, *(*float64)(fp))
		case opBool:
			dst = appendBool(dst, *(*bool)(fp))
		case opInt8:
			dst = append(dst, *(*byte)(fp))
		case opInt16:
			dst = appendVarint(dst, int64(*(*int16)(fp)))
		case opInt32:
			dst = appendVarint(dst, int64(*(*int32)(fp)))
		case opUint:
			dst = appendUvarint(dst, uint64(*(*uint)(fp)))
		case opUint8:
			dst = append(dst, *(*byte)(fp))
		case opUint16:
			dst = appendUvarint(dst, uint64(*(*uint16)(fp)))
		case opUint32:
			dst = appendUvarint(dst, uint64(*(*uint32)(fp)))
		case opUint64:
			dst = appendUvarint(dst, *(*uint64)(fp))
		case opUintptr:
			dst = appendUvarint(dst, uint64(*(*uintptr)(fp)))
		case opFloat32:
			dst = appendFloat32(dst, *(*float32)(fp))
		case opComplex64:
			c := *(*complex64)(fp)
			dst = appendFloat32(appendFloat32(dst, real(c)), imag(c))
		case opComplex128:
			c := *(*complex128)(fp)
			dst = appendFloat64(appendFloat64(dst, real(c)), imag(c))
		case opBytes:
			dst = appendBytes(dst, *(*[]byte)(fp))
		case opTime:
			dst = appendTime(dst, *(*time.Time)(fp))
		case opFixed64:
			dst = binary.LittleEndian.AppendUint64(dst, *(*uint64)(fp))
		default: // opCall
			dst = o.ti.enc(dst, fp)
		}
	}
	return dst
}

// decodeOps decodes ops from src into the value at p; owner is the type whose ops these
// are, for error messages. Primitive decoders signal errors with n == 0 so that the error
// (with field context) is built only on failure.
func decodeOps(ops []op, owner reflect.Type, src []byte, p unsafe.Pointer) (int, error) {
	pos := 0
	for i := range ops {
		o := &ops[i]
		fp := unsafe.Add(p, o.off)
		in := src[pos:]
		var n int
		switch o.kind {
		case opInt64:
			var v int64
			v, n = varint(in)
			*(*int64)(fp) = v
		case opString:
			var v string
			v, n = decodeString(in)
			*(*string)(fp) = v
		case opInt:
			var v int64
			v, n = varint(in)
			if int64(int(v)) != v {
				n = 0
			}
			*(*int)(fp) = int(v)
		case opFloat64:
			var v float64
			v, n = decodeFloat64(in)
			*(*float64)(fp) = v
		case opBool:
			var v bool
			v, n = decodeBool(in)
			*(*bool)(fp) = v
		case opInt8, opUint8:
			if len(in) > 0 {
				*(*byte)(fp) = in[0]
				n = 1
			}
		case opInt16:
			var v int64
			v, n = varint(in)
			if v < math.MinInt16 || v > math.MaxInt16 {
				n = 0
			}
			*(*int16)(fp) = int16(v)
		case opInt32:
			var v int64
			v, n = varint(in)
			if v < math.MinInt32 || v > math.MaxInt32 {
				n = 0
			}
			*(*int32)(fp) = int32(v)
		case opUint:
			var v uint64
			v, n = uvarint(in)
			if uint64(uint(v)) != v {
				n = 0
			}
			*(*uint)(fp) = uint(v)
		case opUint16:
			var v uint64
			v, n = uvarint(in)
			if v > math.MaxUint16 {
				n = 0
			}
			*(*uint16)(fp) = uint16(v)
		case opUint32:
			var v uint64
			v, n = uvarint(in)
			if v > math.MaxUint32 {
				n = 0
			}
			*(*uint32)(fp) = uint32(v)
		case opUint64:
			var v uint64
			v, n = uvarint(in)
			*(*uint64)(fp) = v
		case opUintptr:
			var v uint64
			v, n = uvarint(in)
			if uint64(uintptr(v)) != v {
				n = 0
			}
			*(*uintptr)(fp) = uintptr(v)
		case opFloat32:
			var v float32
			v, n = decodeFloat32(in)
			*(*float32)(fp) = v
		case opComplex64:
			if len(in) >= 8 {
				r, _ := decodeFloat32(in)
				im, _ := decodeFloat32(in[4:])
				*(*complex64)(fp) = complex(r, im)
				n = 8
			}
		case opComplex128:
			if len(in) >= 16 {
				r, _ := decodeFloat64(in)
				im, _ := decodeFloat64(in[8:])
				*(*complex128)(fp) = complex(r, im)
				n = 16
			}
		case opBytes:
			var v []byte
			v, n = decodeBytes(in)
			*(*[]byte)(fp) = v
		case opTime:
			var v time.Time
			v, n = decodeTime(in)
			*(*time.Time)(fp) = v
		case opFixed64:
			if len(in) >= 8 {
				*(*uint64)(fp) = binary.LittleEndian.Uint64(in)
				n = 8
			}
		default: // opCall
			m, err := o.ti.dec(in, fp)
			if err != nil {
				return 0, o.fail(owner, pos, err)
			}
			pos += m
			continue
		}
		if n == 0 {
			return 0, o.fail(owner, pos, ErrCorrupt)
		}
		pos += n
	}
	return pos, nil
}

func (o *op) fail(owner reflect.Type, pos int, err error) error {
	if o.name == "" {
		return fmt.Errorf("codec: decoding %v at byte %d: %w", owner, pos, err)
	}
	return fmt.Errorf("codec: decoding field %s (%v) of %v at byte %d: %w", o.name, o.typ, owner, pos, err)
}
