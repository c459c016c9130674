package codec

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/tinylib/msgp/msgp"
)

// encFn appends the encoding of the value at p. decFn decodes into the value at p (which
// the caller has zeroed) and returns the bytes consumed. p points to the Go value of the
// typeInfo's type; the functions must never store p or pointers derived from it (see
// stackCodec).
type (
	encFn func(dst []byte, p unsafe.Pointer) []byte
	decFn func(src []byte, p unsafe.Pointer) (int, error)
)

// opKind identifies a primitive that the struct runner (encodeOps/decodeOps) handles
// inline in its switch, without a function call; opCall delegates to a typeInfo.
type opKind uint8

const (
	opCall opKind = iota
	opBool
	opInt // int: zigzag varint, range-checked on 32-bit platforms
	opInt8
	opInt16
	opInt32
	opInt64
	opUint
	opUint8
	opUint16
	opUint32
	opUint64
	opUintptr
	opFloat32
	opFloat64
	opComplex64
	opComplex128
	opString
	opBytes // any slice type whose element kind is uint8 and has no override
	opTime
	opFixed64 // int64/uint64 field tagged `codec:"fixed"`: 8 bytes little-endian
)

// op is one step of a compiled struct (or a single primitive). Nested non-pointer structs
// are flattened into their parent's op list, so a Bid with a nested struct is still one
// loop over primitives.
type op struct {
	kind opKind
	off  uintptr      // offset from the start of the outermost value
	ti   *typeInfo    // for opCall
	name string       // field path for errors, "" for a bare primitive
	typ  reflect.Type // field type, for errors
}

// typeInfo is the compiled codec of one Go type.
type typeInfo struct {
	t   reflect.Type
	enc encFn
	dec decFn

	// inline is set for primitives and structs: ops can be spliced into a parent struct.
	inline bool
	ops    []op

	// minSize is a lower bound on the encoded size, used to reject absurd element counts
	// in corrupt input before allocating.
	minSize int

	// opaque: a struct whose data lives only in unexported fields. Encoding it would
	// silently encode nothing, so it is an error unless reached as an embedded field.
	opaque bool

	// userHook: encoding calls user methods (AppendBinary, MarshalMsg, …).
	userHook bool

	children []*typeInfo // for needsHeap
}

// typeCache holds fully compiled typeInfos. Entries are published only after a whole
// top-level compile succeeded, so a cached typeInfo never references an unfinished one.
var typeCache sync.Map // reflect.Type -> *typeInfo

var (
	timeType              = reflect.TypeFor[time.Time]()
	binaryAppenderType    = reflect.TypeFor[encoding.BinaryAppender]()
	binaryMarshalerType   = reflect.TypeFor[encoding.BinaryMarshaler]()
	binaryUnmarshalerType = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	msgpMarshalerType     = reflect.TypeFor[msgp.Marshaler]()
	msgpUnmarshalerType   = reflect.TypeFor[msgp.Unmarshaler]()
)

// compiler carries the state of one top-level compile: the types being compiled (for
// recursive types such as type Node struct{ Next *Node }) and the new typeInfos to publish.
type compiler struct {
	top     reflect.Type
	pending map[reflect.Type]*typeInfo
}

func compileTop(t reflect.Type) (*typeInfo, error) {
	// No early typeCache lookup here: compile checks the cache itself and then applies
	// the opaque-struct check, which a type cached as an embedded field has not passed.
	c := &compiler{top: t, pending: map[reflect.Type]*typeInfo{}}
	ti, err := c.compile(t, "")
	if err != nil {
		return nil, err
	}
	for pt, pti := range c.pending {
		typeCache.LoadOrStore(pt, pti)
	}
	// Another goroutine may have won the race for t; either result is equivalent.
	return ti, nil
}

func (c *compiler) unsupported(path string, bad reflect.Type, reason string) error {
	return &UnsupportedTypeError{Type: c.top, Path: path, Bad: bad, Reason: reason}
}

// compile returns the typeInfo for t, rejecting opaque structs. path names where t sits
// inside the top-level type, for error messages.
func (c *compiler) compile(t reflect.Type, path string) (*typeInfo, error) {
	ti, err := c.compileAny(t, path)
	if err != nil {
		return nil, err
	}
	if ti.opaque {
		return nil, c.unsupported(path, t, "struct has no exported fields (unexported fields are not encoded); "+
			"implement encoding.BinaryAppender and encoding.BinaryUnmarshaler, or use JSON/CBOR")
	}
	return ti, nil
}

func (c *compiler) compileAny(t reflect.Type, path string) (*typeInfo, error) {
	if ti, ok := typeCache.Load(t); ok {
		return ti.(*typeInfo), nil
	}
	if ti, ok := c.pending[t]; ok {
		return ti, nil // possibly still being filled in: recursive type
	}
	if t == timeType {
		return c.publish(primInfo(t, opTime)), nil
	}
	if ti := c.userOverride(t); ti != nil {
		return c.publish(ti), nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return c.publish(primInfo(t, opBool)), nil
	case reflect.Int:
		return c.publish(primInfo(t, opInt)), nil
	case reflect.Int8:
		return c.publish(primInfo(t, opInt8)), nil
	case reflect.Int16:
		return c.publish(primInfo(t, opInt16)), nil
	case reflect.Int32:
		return c.publish(primInfo(t, opInt32)), nil
	case reflect.Int64:
		return c.publish(primInfo(t, opInt64)), nil
	case reflect.Uint:
		return c.publish(primInfo(t, opUint)), nil
	case reflect.Uint8:
		return c.publish(primInfo(t, opUint8)), nil
	case reflect.Uint16:
		return c.publish(primInfo(t, opUint16)), nil
	case reflect.Uint32:
		return c.publish(primInfo(t, opUint32)), nil
	case reflect.Uint64:
		return c.publish(primInfo(t, opUint64)), nil
	case reflect.Uintptr:
		return c.publish(primInfo(t, opUintptr)), nil
	case reflect.Float32:
		return c.publish(primInfo(t, opFloat32)), nil
	case reflect.Float64:
		return c.publish(primInfo(t, opFloat64)), nil
	case reflect.Complex64:
		return c.publish(primInfo(t, opComplex64)), nil
	case reflect.Complex128:
		return c.publish(primInfo(t, opComplex128)), nil
	case reflect.String:
		return c.publish(primInfo(t, opString)), nil
	case reflect.Struct:
		return c.compileStruct(t, path)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && c.userOverride(t.Elem()) == nil {
			return c.publish(primInfo(t, opBytes)), nil
		}
		return c.compileSlice(t, path)
	case reflect.Array:
		return c.compileArray(t, path)
	case reflect.Map:
		return c.compileMap(t, path)
	case reflect.Pointer:
		return c.compilePointer(t, path)
	case reflect.Interface:
		return nil, c.unsupported(path, t, "interface types cannot be decoded without knowing the concrete type; "+
			"use a concrete type, or implement encoding.BinaryAppender/BinaryUnmarshaler on the enclosing type")
	default: // Chan, Func, UnsafePointer
		return nil, c.unsupported(path, t, "values of kind "+t.Kind().String()+" have no serialisable representation")
	}
}

func (c *compiler) publish(ti *typeInfo) *typeInfo {
	c.pending[ti.t] = ti
	return ti
}

// primInfo builds the typeInfo of a primitive: a single op at offset 0, run by the same
// loop as structs, so there is exactly one implementation of each primitive's wire format
// in the reflective path.
func primInfo(t reflect.Type, k opKind) *typeInfo {
	ti := &typeInfo{t: t, inline: true, minSize: primMinSize(k)}
	ti.ops = []op{{kind: k, typ: t}}
	ops := ti.ops
	ti.enc = func(dst []byte, p unsafe.Pointer) []byte { return encodeOps(ops, dst, p) }
	ti.dec = func(src []byte, p unsafe.Pointer) (int, error) { return decodeOps(ops, t, src, p) }
	return ti
}

func primMinSize(k opKind) int {
	switch k {
	case opFloat32:
		return 4
	case opFloat64, opComplex64:
		return 8
	case opComplex128:
		return 16
	case opTime:
		return 2
	default:
		return 1
	}
}

// compileStruct compiles t to a flat list of ops over its exported fields, in declaration
// order. Embedded (anonymous) non-pointer struct fields are flattened as if their fields
// were declared in t, whether or not the embedded type is exported (like encoding/json);
// an embedded struct with no exported fields (e.g. sync.Mutex) contributes nothing.
// Fields tagged `codec:"-"` and blank (_) fields are skipped; `codec:"fixed"` on an
// int64/uint64 field selects 8 fixed bytes instead of a varint (for hashes and random ids,
// whose varints would take 9–10 bytes). Any other tag value is an error, so typos fail loudly.
func (c *compiler) compileStruct(t reflect.Type, path string) (*typeInfo, error) {
	ti := &typeInfo{t: t, inline: true}
	c.pending[t] = ti
	ops := []op{}
	hiddenData := false
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("codec")
		if sf.Name == "_" || tag == "-" {
			continue
		}
		embeddedStruct := sf.Anonymous && sf.Type.Kind() == reflect.Struct
		if !sf.IsExported() && !embeddedStruct {
			if sf.Type.Size() > 0 {
				hiddenData = true
			}
			continue
		}
		fpath := t.String() + "." + sf.Name
		if path != "" {
			fpath = path + "." + sf.Name
		}
		switch tag {
		case "":
		case "fixed":
			if k := sf.Type.Kind(); (k != reflect.Int64 && k != reflect.Uint64) || c.userOverride(sf.Type) != nil {
				return nil, c.unsupported(fpath, sf.Type, `tag codec:"fixed" applies only to int64 and uint64 fields`)
			}
			ti.minSize = satAdd(ti.minSize, 8)
			ops = append(ops, op{kind: opFixed64, off: sf.Offset, name: sf.Name, typ: sf.Type})
			continue
		default:
			return nil, c.unsupported(fpath, sf.Type, fmt.Sprintf("unknown tag codec:%q (want \"-\" or \"fixed\")", tag))
		}
		var fti *typeInfo
		var err error
		if embeddedStruct {
			fti, err = c.compileAny(sf.Type, fpath)
			if err == nil && fti.opaque {
				hiddenData = true
				continue
			}
		} else {
			fti, err = c.compile(sf.Type, fpath)
		}
		if err != nil {
			return nil, err
		}
		ti.children = append(ti.children, fti)
		ti.minSize = satAdd(ti.minSize, fti.minSize)
		if fti.inline {
			for _, sub := range fti.ops {
				sub.off += sf.Offset
				if sub.name == "" {
					sub.name = sf.Name
				} else {
					sub.name = sf.Name + "." + sub.name
				}
				ops = append(ops, sub)
			}
			continue
		}
		ops = append(ops, op{kind: opCall, off: sf.Offset, ti: fti, name: sf.Name, typ: sf.Type})
	}
	ti.ops = ops
	ti.opaque = len(ops) == 0 && hiddenData
	ti.enc = func(dst []byte, p unsafe.Pointer) []byte { return encodeOps(ops, dst, p) }
	ti.dec = func(src []byte, p unsafe.Pointer) (int, error) { return decodeOps(ops, t, src, p) }
	return ti, nil
}

func satAdd(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

func satMul(a, n int) int {
	if n != 0 && a > math.MaxInt/n {
		return math.MaxInt
	}
	return a * n
}

// userOverride returns a typeInfo using the type's own serialisation methods (rules 2 and
// 3 of Of), or nil. Methods are called through *T, whose method set includes T's.
func (c *compiler) userOverride(t reflect.Type) *typeInfo {
	if t.Kind() == reflect.Interface || t.Kind() == reflect.Pointer {
		// Pointers are handled structurally (nil flag + target), which reaches the
		// target's methods; interfaces are unsupported.
		return nil
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(binaryUnmarshalerType) {
		if pt.Implements(binaryAppenderType) {
			return binaryAppenderInfo(t)
		}
		if pt.Implements(binaryMarshalerType) {
			return binaryMarshalerInfo(t)
		}
	}
	if pt.Implements(msgpMarshalerType) && pt.Implements(msgpUnmarshalerType) {
		return msgpInfo(t)
	}
	return nil
}
