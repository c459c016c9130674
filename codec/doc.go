// Package codec turns Go values into bytes and back for Strom: keys (hashing to key
// groups, state keys), state values, and later records exchanged between processes.
//
// The central type is Codec[T]. Of[T]() returns the default codec for T; named
// constructors (Int64, String, Time, …) return the hand-written codecs for basic types;
// JSON and CBOR return codecs built on encoding/json and fxamacker/cbor for readable or
// interoperable state; OrderedInt64, OrderedString, … return order-preserving codecs for
// sorted state keys.
//
// # Default wire format
//
// The default format is compact, positional and not self-describing: the type is the
// schema. It is deterministic (equal values give equal bytes, maps included), so
// encodings can be hashed and compared.
//
//   - bool: 1 byte, 0 or 1. int8/uint8: 1 raw byte.
//   - int, int16, int32, int64, time.Duration: zigzag varint; uint…, uintptr: uvarint.
//     int and uint use the 64-bit encoding on every platform.
//     A field tagged `codec:"fixed"` (int64/uint64 only) is 8 bytes little-endian.
//   - float32/float64: 4/8 bytes little-endian IEEE 754, bit-exact; complex: real, imag.
//   - string: uvarint length, bytes.
//   - []byte and any slice: 0 for nil, otherwise uvarint(len+1) then the elements, so nil
//     and empty slices stay distinct. [N]T: the N elements, no length.
//   - map: 0 for nil, otherwise uvarint(len+1) then key,value pairs sorted by the encoded
//     key bytes, so the output does not depend on Go's random iteration order.
//   - pointer: 0 for nil, otherwise 1 then the target. Aliasing is not preserved and
//     cyclic values are not supported (encoding recurses until the stack overflows).
//   - time.Time: varint Unix seconds, uvarint (nanoseconds<<1 | hasZone), and the zone
//     offset in seconds for non-UTC times. Monotonic readings and zone names are dropped.
//   - struct: its encoded fields back to back in declaration order, no names or tags.
//
// # Structs
//
// Only exported fields are encoded; unexported fields are skipped silently (they come
// back as zero values), except that a struct with no exported field but some unexported
// data (sync.Mutex, big.Int, …) is rejected rather than encoded as nothing. Fields of
// embedded structs are encoded in place, as if declared in the outer struct, even when
// the embedded type is unexported (like encoding/json). Blank (_) fields and fields
// tagged `codec:"-"` are skipped. interface, chan, func and unsafe.Pointer fields make
// For return an *UnsupportedTypeError naming the field (and Of panic with it).
//
// Because the format is positional, adding, removing, reordering or retyping exported
// fields changes the format: bytes written by one version of a struct cannot be read by
// another. Use JSON or CBOR (field names on the wire), or implement
// encoding.BinaryAppender/BinaryUnmarshaler with your own versioning, for data that must
// outlive a code change (savepoints).
//
// # Schemas
//
// SchemaOf describes the default format of a type as JSON-able data (a
// Schema: kinds, element/key/value types, struct fields in encoding order,
// skipped fields, custom encodings), and DecodeDynamic decodes bytes with
// only the schema into generic values for JSON. Keyed-state snapshots
// record the schemas of their states, so savepoints can be inspected
// without the job's types and a restore notices a type whose encoding
// changed. CodecSchema describes any codec: the default one as SchemaOf,
// JSON and CBOR as such, others as opaque.
//
// # Implementation and performance
//
// The struct codec is compiled once per type by reflection and cached in a sync.Map keyed
// by reflect.Type. Nested non-pointer structs are flattened, so a struct of primitives
// becomes a single loop over (kind, offset) pairs that reads and writes fields through
// unsafe pointers: no reflection, no interface calls and no allocations per value,
// except the copies of decoded strings (src is never retained). Slices, maps, pointers
// and user hooks allocate what they must (backing arrays, map, target). See the
// "Record codecs: measured" section of the design doc for numbers.
//
// # Errors
//
// Decode never panics on bad input: it returns an error wrapping ErrCorrupt with the
// field path, e.g. "codec: decoding field URL (string) of bench.Bid at byte 9: …". Every
// strict prefix of a valid encoding is rejected, element counts are checked against the
// remaining input before allocating, and varints longer than 10 bytes, out-of-range
// integers, bad bool/nil bytes and invalid times are rejected. Append cannot fail for
// compiled codecs; when a user hook or the JSON/CBOR library fails it panics with an
// *EncodeError.
package codec
