package codec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"

	"github.com/fxamacker/cbor/v2"
	"github.com/tinylib/msgp/msgp"
)

// Schemas: the default format described as data.
//
// The default format is positional (see the package comment): bytes can be
// read only by code that knows the Go type. A Schema describes what the
// default codec writes for a type — kinds, element, key and value types,
// struct fields in encoding order, the fields it skips, and where a type
// encodes itself — as plain JSON-able data, so a snapshot can carry it and
// a tool without the Go types (strom savepoint inspect) can decode the
// bytes with DecodeDynamic. SchemaOf mirrors compile.go rule for rule; the
// round-trip tests in schema_test.go hold the two together.

// Schema kinds. The primitive kinds are named after the Go kinds whose
// encoding they share (a named type with a basic underlying type encodes as
// its kind).
const (
	KindBool       = "bool"
	KindInt8       = "int8" // one byte
	KindInt16      = "int16"
	KindInt32      = "int32"
	KindInt        = "int64" // int, int64, time.Duration: zigzag varint (as int16, int32, in range)
	KindUint8      = "uint8" // one byte
	KindUint16     = "uint16"
	KindUint32     = "uint32"
	KindUint       = "uint64"      // uint, uint64, uintptr: uvarint (as uint16, uint32, in range)
	KindFixedInt   = "fixed_int64" // int64 field tagged codec:"fixed"
	KindFixedUint  = "fixed_uint64"
	KindFloat32    = "float32"
	KindFloat64    = "float64"
	KindComplex64  = "complex64"
	KindComplex128 = "complex128"
	KindString     = "string"
	KindBytes      = "bytes" // a slice of a uint8 kind
	KindTime       = "time"
	KindStruct     = "struct"
	KindSlice      = "slice"
	KindArray      = "array"
	KindMap        = "map"
	KindPointer    = "pointer"
	// KindRef stands for the enclosing schema whose Type is Ref: the
	// recursion of a recursive type (type Node struct{ Next *Node }).
	KindRef = "ref"
	// KindCustom is a type that encodes itself, or a codec other than the
	// default; Codec says which.
	KindCustom = "custom"
)

// Custom encodings (Schema.Codec of KindCustom).
const (
	// CodecBinary: encoding.BinaryAppender/BinaryMarshaler output with a
	// uvarint length in front. Dumped as base64.
	CodecBinary = "binary"
	// CodecMsgpack: msgp.Marshaler output (self-delimiting). Base64.
	CodecMsgpack = "msgpack"
	// CodecJSON: codec.JSON, one JSON value and '\n'. Dumped as the JSON.
	CodecJSON = "json"
	// CodecCBOR: codec.CBOR. Base64.
	CodecCBOR = "cbor"
	// CodecUser: a codec this package does not know. Its bytes cannot be
	// delimited, so nothing after them can be decoded either.
	CodecUser = "user"
)

// Schema describes the encoding of one type by its codec.
type Schema struct {
	Kind string `json:"kind"`
	// Type is the Go type (reflect.Type.String), for people; decoding does
	// not use it, except to resolve KindRef.
	Type string `json:"type,omitempty"`
	// Elem is the element of slice, array and pointer.
	Elem *Schema `json:"elem,omitempty"`
	// Len is the length of an array.
	Len int `json:"len,omitempty"`
	// Key and Value are a map's.
	Key   *Schema `json:"key,omitempty"`
	Value *Schema `json:"value,omitempty"`
	// Fields are a struct's fields in declaration order, embedded structs'
	// fields in place; Skipped ones are not encoded.
	Fields []Field `json:"fields,omitempty"`
	// Ref names the enclosing schema's Type, for KindRef.
	Ref string `json:"ref,omitempty"`
	// Codec is the custom encoding, for KindCustom.
	Codec string `json:"codec,omitempty"`
}

// Field is one struct field of a Schema.
type Field struct {
	Name string `json:"name"`
	// Schema is nil for skipped fields.
	Schema *Schema `json:"schema,omitempty"`
	// Skipped fields are not in the encoding: unexported, blank (_),
	// tagged codec:"-", or embedded structs whose data is all unexported.
	Skipped bool `json:"skipped,omitempty"`
}

// SchemaOf returns the schema of the default codec of t (Of/For), or the
// *UnsupportedTypeError For would return.
func SchemaOf(t reflect.Type) (*Schema, error) {
	if _, err := compileTop(t); err != nil {
		return nil, err
	}
	return schemaOf(t, map[reflect.Type]bool{}), nil
}

// CodecSchema returns the schema of what c writes: SchemaOf(T) when c is
// T's default codec, a KindCustom schema naming JSON or CBOR for those
// codecs, and CodecUser for any other codec.
func CodecSchema[T any](c Codec[T]) *Schema {
	t := reflect.TypeFor[T]()
	switch c.(type) {
	case jsonCodec[T]:
		return &Schema{Kind: KindCustom, Type: t.String(), Codec: CodecJSON}
	case cborCodec[T]:
		return &Schema{Kind: KindCustom, Type: t.String(), Codec: CodecCBOR}
	}
	if d, err := For[T](); err == nil && reflect.TypeOf(c) == reflect.TypeOf(d) {
		if s, err := SchemaOf(t); err == nil {
			return s
		}
	}
	return &Schema{Kind: KindCustom, Type: t.String(), Codec: CodecUser}
}

// primKinds are the schema kinds of the primitive Go kinds.
var primKinds = map[reflect.Kind]string{
	reflect.Bool: KindBool, reflect.Int: KindInt, reflect.Int16: KindInt16, reflect.Int32: KindInt32,
	reflect.Int64: KindInt, reflect.Int8: KindInt8, reflect.Uint: KindUint, reflect.Uint16: KindUint16,
	reflect.Uint32: KindUint32, reflect.Uint64: KindUint, reflect.Uintptr: KindUint, reflect.Uint8: KindUint8,
	reflect.Float32: KindFloat32, reflect.Float64: KindFloat64, reflect.Complex64: KindComplex64,
	reflect.Complex128: KindComplex128, reflect.String: KindString,
}

// schemaOf follows compileAny; t has compiled, so every type it reaches is
// supported. open holds the types being described (recursion).
func schemaOf(t reflect.Type, open map[reflect.Type]bool) *Schema {
	if open[t] {
		return &Schema{Kind: KindRef, Ref: t.String()}
	}
	s := &Schema{Type: t.String()}
	if t == timeType {
		s.Kind = KindTime
		return s
	}
	c := &compiler{top: t, pending: map[reflect.Type]*typeInfo{}}
	if ti := c.userOverride(t); ti != nil {
		// The same test as userOverride: the stdlib hooks win over msgp.
		s.Kind, s.Codec = KindCustom, CodecMsgpack
		if pt := reflect.PointerTo(t); pt.Implements(binaryUnmarshalerType) &&
			(pt.Implements(binaryAppenderType) || pt.Implements(binaryMarshalerType)) {
			s.Codec = CodecBinary
		}
		return s
	}
	open[t] = true // for the composite kinds below
	defer delete(open, t)
	if k, ok := primKinds[t.Kind()]; ok {
		s.Kind = k
		return s
	}
	switch t.Kind() {
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && c.userOverride(t.Elem()) == nil {
			s.Kind = KindBytes
			return s
		}
		s.Kind, s.Elem = KindSlice, schemaOf(t.Elem(), open)
	case reflect.Array:
		s.Kind, s.Len, s.Elem = KindArray, t.Len(), schemaOf(t.Elem(), open)
	case reflect.Map:
		s.Kind, s.Key, s.Value = KindMap, schemaOf(t.Key(), open), schemaOf(t.Elem(), open)
	case reflect.Pointer:
		s.Kind, s.Elem = KindPointer, schemaOf(t.Elem(), open)
	case reflect.Struct:
		s.Kind = KindStruct
		s.Fields = structFields(t, open, c)
	default:
		panic(fmt.Sprintf("codec: schema of %v, which compiled: %v", t, t.Kind()))
	}
	return s
}

// structFields follows compileStruct: embedded non-pointer structs are
// flattened (an opaque one contributes one skipped field), fixed int64s
// get their own kinds.
func structFields(t reflect.Type, open map[reflect.Type]bool, c *compiler) []Field {
	fields := []Field{}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("codec")
		embeddedStruct := sf.Anonymous && sf.Type.Kind() == reflect.Struct
		if sf.Name == "_" || tag == "-" || (!sf.IsExported() && !embeddedStruct) {
			fields = append(fields, Field{Name: sf.Name, Skipped: true})
			continue
		}
		if tag == "fixed" {
			k := KindFixedInt
			if sf.Type.Kind() == reflect.Uint64 {
				k = KindFixedUint
			}
			fields = append(fields, Field{Name: sf.Name, Schema: &Schema{Kind: k, Type: sf.Type.String()}})
			continue
		}
		if embeddedStruct && sf.Type != timeType && c.userOverride(sf.Type) == nil {
			sub := structFields(sf.Type, open, c)
			if !anyEncoded(sub) {
				fields = append(fields, Field{Name: sf.Name, Skipped: true})
				continue
			}
			fields = append(fields, sub...)
			continue
		}
		fields = append(fields, Field{Name: sf.Name, Schema: schemaOf(sf.Type, open)})
	}
	return fields
}

func anyEncoded(fs []Field) bool {
	for _, f := range fs {
		if !f.Skipped {
			return true
		}
	}
	return false
}

// DecodeDynamic decodes one value encoded as s describes from the front of
// src, into generic values suited to encoding/json: bool, int64, uint64,
// float32, float64 (NaN and ±Inf as the strings "NaN", "+Inf", "-Inf", which JSON
// cannot hold otherwise), [2]float64 for complex numbers, string, []byte
// (JSON: base64) for bytes and binary, msgpack and CBOR custom encodings,
// json.RawMessage for the JSON codec, time.Time, map[string]any for
// structs (encoded fields by name), []any for slices and arrays, nil for
// nil slices, maps and pointers. Maps whose keys decode to strings or
// integers become map[string]any with the key formatted as encoding/json
// formats map keys; other maps become []any of {"key": k, "value": v}. It
// returns the bytes consumed; bad input returns an error wrapping
// ErrCorrupt, and CodecUser data cannot be decoded at all.
func DecodeDynamic(s *Schema, src []byte) (any, int, error) {
	d := dynDecoder{refs: map[string]*Schema{}}
	return d.decode(s, src, 0)
}

type dynDecoder struct {
	refs map[string]*Schema
}

const maxDynDepth = 1000

func (d *dynDecoder) decode(s *Schema, src []byte, depth int) (any, int, error) {
	if s == nil {
		return nil, 0, fmt.Errorf("codec: no schema: %w", ErrCorrupt)
	}
	if depth > maxDynDepth {
		return nil, 0, fmt.Errorf("codec: value nested deeper than %d: %w", maxDynDepth, ErrCorrupt)
	}
	switch s.Kind {
	case KindBool:
		return decodeAs(Bool(), src)
	case KindInt:
		return decodeAs(Int64(), src)
	case KindInt8:
		return decodeInt(Int8(), src)
	case KindInt16:
		return decodeInt(Int16(), src)
	case KindInt32:
		return decodeInt(Int32(), src)
	case KindUint:
		return decodeAs(Uint64(), src)
	case KindUint8:
		return decodeUint(Uint8(), src)
	case KindUint16:
		return decodeUint(Uint16(), src)
	case KindUint32:
		return decodeUint(Uint32(), src)
	case KindFixedInt:
		return decodeAs(FixedInt64(), src)
	case KindFixedUint:
		return decodeAs(FixedUint64(), src)
	case KindFloat32:
		v, n, err := Float32().Decode(src)
		if f, ok := jsonFloat(float64(v)).(float64); ok {
			return float32(f), n, err // encoding/json formats it with 32-bit precision
		}
		return jsonFloat(float64(v)), n, err
	case KindFloat64:
		v, n, err := Float64().Decode(src)
		return jsonFloat(v), n, err
	case KindComplex64:
		v, n, err := Complex64().Decode(src)
		return []any{jsonFloat(float64(real(v))), jsonFloat(float64(imag(v)))}, n, err
	case KindComplex128:
		v, n, err := Complex128().Decode(src)
		return []any{jsonFloat(real(v)), jsonFloat(imag(v))}, n, err
	case KindString:
		return decodeAs(String(), src)
	case KindBytes:
		v, n, err := Bytes().Decode(src)
		if v == nil {
			return nil, n, err
		}
		return v, n, err
	case KindTime:
		return decodeAs(Time(), src)
	case KindPointer:
		if len(src) == 0 || src[0] > 1 {
			return nil, 0, fmt.Errorf("codec: decoding nil flag of %s: %w", s.Type, ErrCorrupt)
		}
		if src[0] == 0 {
			return nil, 1, nil
		}
		d.open(s)
		v, n, err := d.decode(s.Elem, src[1:], depth+1)
		return v, n + 1, err
	case KindSlice:
		l, pos := uvarint(src)
		if pos == 0 || l > uint64(len(src)-pos)+1 && !zeroSize(s.Elem) {
			return nil, 0, fmt.Errorf("codec: decoding length of %s: %w", s.Type, ErrCorrupt)
		}
		if l == 0 {
			return nil, pos, nil
		}
		return d.elems(s, int(l-1), src, pos, depth)
	case KindArray:
		return d.elems(s, s.Len, src, 0, depth)
	case KindMap:
		return d.decodeMap(s, src, depth)
	case KindStruct:
		d.open(s)
		out := make(map[string]any, len(s.Fields))
		pos := 0
		for _, f := range s.Fields {
			if f.Skipped {
				continue
			}
			v, n, err := d.decode(f.Schema, src[pos:], depth+1)
			if err != nil {
				return nil, 0, fmt.Errorf("codec: decoding field %s of %s at byte %d: %w", f.Name, s.Type, pos, err)
			}
			out[f.Name] = v
			pos += n
		}
		return out, pos, nil
	case KindRef:
		r, ok := d.refs[s.Ref]
		if !ok {
			return nil, 0, fmt.Errorf("codec: schema refers to %s outside its definition: %w", s.Ref, ErrCorrupt)
		}
		return d.decode(r, src, depth+1)
	case KindCustom:
		return decodeCustom(s, src)
	}
	return nil, 0, fmt.Errorf("codec: unknown schema kind %q: %w", s.Kind, ErrCorrupt)
}

func decodeAs[T any](c Codec[T], src []byte) (any, int, error) {
	v, n, err := c.Decode(src)
	if err != nil {
		return nil, 0, err
	}
	return v, n, nil
}

// decodeInt and decodeUint decode with the codec of a narrower integer
// (which range-checks) and widen the result.
func decodeInt[T int8 | int16 | int32](c Codec[T], src []byte) (any, int, error) {
	v, n, err := c.Decode(src)
	if err != nil {
		return nil, 0, err
	}
	return int64(v), n, nil
}

func decodeUint[T uint8 | uint16 | uint32](c Codec[T], src []byte) (any, int, error) {
	v, n, err := c.Decode(src)
	if err != nil {
		return nil, 0, err
	}
	return uint64(v), n, nil
}

// open makes s the target of KindRef schemas naming its type below it.
func (d *dynDecoder) open(s *Schema) {
	if s.Type != "" {
		if _, ok := d.refs[s.Type]; !ok {
			d.refs[s.Type] = s
		}
	}
}

// zeroSize says whether an element may encode to no bytes (struct{}), so
// a count cannot be checked against the remaining input.
func zeroSize(s *Schema) bool {
	if s == nil || s.Kind != KindStruct {
		return s != nil && s.Kind == KindArray && (s.Len == 0 || zeroSize(s.Elem))
	}
	for _, f := range s.Fields {
		if !f.Skipped && !zeroSize(f.Schema) {
			return false
		}
	}
	return true
}

func (d *dynDecoder) elems(s *Schema, n int, src []byte, pos, depth int) (any, int, error) {
	if zeroSize(s.Elem) && n > maxZeroSizeElems {
		return nil, 0, fmt.Errorf("codec: decoding length of %s: %w", s.Type, ErrCorrupt)
	}
	d.open(s)
	out := make([]any, 0, min(n, len(src)-pos+1))
	for i := range n {
		v, m, err := d.decode(s.Elem, src[pos:], depth+1)
		if err != nil {
			return nil, 0, fmt.Errorf("codec: decoding element %d of %s: %w", i, s.Type, err)
		}
		out = append(out, v)
		pos += m
	}
	return out, pos, nil
}

func (d *dynDecoder) decodeMap(s *Schema, src []byte, depth int) (any, int, error) {
	l, pos := uvarint(src)
	if pos == 0 || l > uint64(len(src)-pos)+1 {
		return nil, 0, fmt.Errorf("codec: decoding length of %s: %w", s.Type, ErrCorrupt)
	}
	if l == 0 {
		return nil, pos, nil
	}
	d.open(s)
	n := int(l - 1)
	keys, vals := make([]any, 0, n), make([]any, 0, n)
	for i := range n {
		k, m, err := d.decode(s.Key, src[pos:], depth+1)
		if err != nil {
			return nil, 0, fmt.Errorf("codec: decoding key %d of %s: %w", i, s.Type, err)
		}
		pos += m
		v, m, err := d.decode(s.Value, src[pos:], depth+1)
		if err != nil {
			return nil, 0, fmt.Errorf("codec: decoding value %d of %s: %w", i, s.Type, err)
		}
		pos += m
		keys, vals = append(keys, k), append(vals, v)
	}
	byName := make(map[string]any, n)
	for i, k := range keys {
		var name string
		switch k := k.(type) {
		case string:
			name = k
		case int64:
			name = strconv.FormatInt(k, 10)
		case uint64:
			name = strconv.FormatUint(k, 10)
		default:
			pairs := make([]any, n)
			for j := range keys {
				pairs[j] = map[string]any{"key": keys[j], "value": vals[j]}
			}
			return pairs, pos, nil
		}
		byName[name] = vals[i]
	}
	return byName, pos, nil
}

func decodeCustom(s *Schema, src []byte) (any, int, error) {
	switch s.Codec {
	case CodecBinary:
		l, n := uvarint(src)
		if n == 0 || l > uint64(len(src)-n) {
			return nil, 0, fmt.Errorf("codec: decoding length of %s: %w", s.Type, ErrCorrupt)
		}
		end := n + int(l)
		return append([]byte{}, src[n:end]...), end, nil
	case CodecMsgpack:
		rest, err := msgp.Skip(src)
		if err != nil {
			return nil, 0, fmt.Errorf("codec: skipping MessagePack %s: %w: %w", s.Type, ErrCorrupt, err)
		}
		n := len(src) - len(rest)
		return append([]byte{}, src[:n]...), n, nil
	case CodecJSON:
		v, n, err := JSON[json.RawMessage]().Decode(src)
		if err != nil {
			return nil, 0, err
		}
		return v, n, nil
	case CodecCBOR:
		var raw cbor.RawMessage
		_, dm := cborModes()
		rest, err := dm.UnmarshalFirst(src, &raw)
		if err != nil {
			return nil, 0, fmt.Errorf("codec: decoding CBOR %s: %w: %w", s.Type, ErrCorrupt, err)
		}
		n := len(src) - len(rest)
		return append([]byte{}, src[:n]...), n, nil
	}
	return nil, 0, fmt.Errorf("%w: %s is encoded by a codec (%s) whose bytes cannot be read without its Go type", ErrNoSchema, s.Type, s.Codec)
}

// ErrNoSchema is wrapped by DecodeDynamic's error for data of a codec that
// has no schema (CodecUser).
var ErrNoSchema = errors.New("codec: no schema for the data")

// jsonFloat returns f, or a string for the values JSON has no number for.
func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return f
}
