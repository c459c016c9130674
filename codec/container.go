package codec

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"unsafe"
)

// maxZeroSizeElems bounds the element count of slices/maps whose elements encode to zero
// bytes (e.g. []struct{}): the count cannot be validated against the input length, and
// corrupt input must not make Decode loop or allocate for ever.
const maxZeroSizeElems = 1 << 20

// zeroSizedArray is the backing array of every decoded empty, non-nil slice (the runtime
// does the same with its zerobase).
var zeroSizedArray [0]uint64

type sliceHeader struct {
	data unsafe.Pointer
	len  int
	cap  int
}

// checkCount validates an element count read from the input against the bytes left and
// the element's minimum encoded size, before anything is allocated.
func checkCount(n uint64, remaining, minSize int) bool {
	if minSize == 0 {
		return n <= maxZeroSizeElems
	}
	return n <= uint64(remaining/minSize)
}

// compileSlice: 0 for nil, else uvarint(len+1) followed by the elements. Keeping nil
// distinct from empty makes round trips exact under reflect.DeepEqual.
func (c *compiler) compileSlice(t reflect.Type, path string) (*typeInfo, error) {
	ti := &typeInfo{t: t, minSize: 1}
	c.pending[t] = ti
	et := t.Elem()
	eti, err := c.compile(et, path+"[]")
	if err != nil {
		return nil, err
	}
	ti.children = []*typeInfo{eti}
	esize := et.Size()
	errLen := fmt.Errorf("codec: decoding length of %v: %w", t, ErrCorrupt)
	ti.enc = func(dst []byte, p unsafe.Pointer) []byte {
		h := (*sliceHeader)(p)
		if h.data == nil {
			return append(dst, 0)
		}
		dst = appendUvarint(dst, uint64(h.len)+1)
		for i := range h.len {
			dst = eti.enc(dst, unsafe.Add(h.data, uintptr(i)*esize))
		}
		return dst
	}
	ti.dec = func(src []byte, p unsafe.Pointer) (int, error) {
		l, pos := uvarint(src)
		if pos == 0 {
			return 0, errLen
		}
		if l == 0 {
			return pos, nil // nil slice; *p is already zero
		}
		n := l - 1
		if !checkCount(n, len(src)-pos, eti.minSize) {
			return 0, errLen
		}
		data := newArray(t, int(n))
		for i := range int(n) {
			m, err := eti.dec(src[pos:], unsafe.Add(data, uintptr(i)*esize))
			if err != nil {
				return 0, fmt.Errorf("codec: decoding element %d of %v: %w", i, t, err)
			}
			pos += m
		}
		*(*sliceHeader)(p) = sliceHeader{data: data, len: int(n), cap: int(n)}
		return pos, nil
	}
	return ti, nil
}

// newArray allocates a zeroed, correctly typed (GC-visible) backing array for a slice of
// type t with n elements. reflect.MakeSlice would also heap-allocate the slice header;
// growing a local header through reflect keeps it to the one allocation of the array.
func newArray(t reflect.Type, n int) unsafe.Pointer {
	if n == 0 {
		// Non-nil so that an empty slice does not decode as nil.
		return unsafe.Pointer(&zeroSizedArray)
	}
	var h sliceHeader
	reflect.NewAt(t, unsafe.Pointer(&h)).Elem().Grow(n)
	return h.data
}

// compileArray: the elements back to back, no length (it is part of the type). [N]byte
// is copied as raw bytes.
func (c *compiler) compileArray(t reflect.Type, path string) (*typeInfo, error) {
	n := t.Len()
	et := t.Elem()
	if et.Kind() == reflect.Uint8 && c.userOverride(et) == nil {
		ti := &typeInfo{t: t, minSize: n}
		errShort := fmt.Errorf("codec: decoding %v: %w", t, ErrCorrupt)
		ti.enc = func(dst []byte, p unsafe.Pointer) []byte {
			return append(dst, unsafe.Slice((*byte)(p), n)...)
		}
		ti.dec = func(src []byte, p unsafe.Pointer) (int, error) {
			if len(src) < n {
				return 0, errShort
			}
			copy(unsafe.Slice((*byte)(p), n), src)
			return n, nil
		}
		return c.publish(ti), nil
	}
	ti := &typeInfo{t: t}
	c.pending[t] = ti
	eti, err := c.compile(et, path+"[]")
	if err != nil {
		return nil, err
	}
	ti.children = []*typeInfo{eti}
	ti.minSize = satMul(eti.minSize, n)
	esize := et.Size()
	ti.enc = func(dst []byte, p unsafe.Pointer) []byte {
		for i := range n {
			dst = eti.enc(dst, unsafe.Add(p, uintptr(i)*esize))
		}
		return dst
	}
	ti.dec = func(src []byte, p unsafe.Pointer) (int, error) {
		pos := 0
		for i := range n {
			m, err := eti.dec(src[pos:], unsafe.Add(p, uintptr(i)*esize))
			if err != nil {
				return 0, fmt.Errorf("codec: decoding element %d of %v: %w", i, t, err)
			}
			pos += m
		}
		return pos, nil
	}
	return ti, nil
}

// compilePointer: 0 for nil, 1 followed by the target. Sharing and cycles are not
// preserved: two pointers to one value decode as two values, and encoding a cyclic
// structure recurses until the stack overflows (like encoding/json).
func (c *compiler) compilePointer(t reflect.Type, path string) (*typeInfo, error) {
	ti := &typeInfo{t: t, minSize: 1}
	c.pending[t] = ti
	et := t.Elem()
	eti, err := c.compile(et, path+"*")
	if err != nil {
		return nil, err
	}
	ti.children = []*typeInfo{eti}
	errFlag := fmt.Errorf("codec: decoding nil flag of %v: %w", t, ErrCorrupt)
	ti.enc = func(dst []byte, p unsafe.Pointer) []byte {
		target := *(*unsafe.Pointer)(p)
		if target == nil {
			return append(dst, 0)
		}
		return eti.enc(append(dst, 1), target)
	}
	ti.dec = func(src []byte, p unsafe.Pointer) (int, error) {
		if len(src) == 0 || src[0] > 1 {
			return 0, errFlag
		}
		if src[0] == 0 {
			return 1, nil
		}
		target := reflect.New(et).UnsafePointer()
		m, err := eti.dec(src[1:], target)
		if err != nil {
			return 0, err
		}
		*(*unsafe.Pointer)(p) = target
		return 1 + m, nil
	}
	return ti, nil
}

// compileMap: 0 for nil, else uvarint(len+1) followed by key,value pairs sorted by the
// bytes of the encoded key (ties, e.g. several NaN keys, by the encoded value), so equal
// maps always encode to identical bytes whatever Go's iteration order — needed when the
// encoding is hashed, compared or used as a key. The sort costs an extra buffer; maps
// are expected to be rare in records.
func (c *compiler) compileMap(t reflect.Type, path string) (*typeInfo, error) {
	ti := &typeInfo{t: t, minSize: 1}
	c.pending[t] = ti
	kt, vt := t.Key(), t.Elem()
	kti, err := c.compile(kt, path+"[key]")
	if err != nil {
		return nil, err
	}
	vti, err := c.compile(vt, path+"[value]")
	if err != nil {
		return nil, err
	}
	ti.children = []*typeInfo{kti, vti}
	errLen := fmt.Errorf("codec: decoding length of %v: %w", t, ErrCorrupt)
	ti.enc = func(dst []byte, p unsafe.Pointer) []byte {
		mp := *(*unsafe.Pointer)(p)
		if mp == nil {
			return append(dst, 0)
		}
		// Never hand p itself to reflect (it may point into a stack frame hidden from
		// escape analysis); use a local copy of the map pointer instead.
		m := reflect.NewAt(t, unsafe.Pointer(&mp)).Elem()
		n := m.Len()
		dst = appendUvarint(dst, uint64(n)+1)
		if n == 0 {
			return dst
		}
		k, v := reflect.New(kt), reflect.New(vt)
		kp, vp := k.UnsafePointer(), v.UnsafePointer()
		ke, ve := k.Elem(), v.Elem()
		type span struct{ start, keyEnd, end int }
		spans := make([]span, 0, n)
		base := len(dst)
		var it reflect.MapIter
		it.Reset(m)
		for it.Next() {
			ke.SetIterKey(&it)
			ve.SetIterValue(&it)
			s := len(dst)
			dst = kti.enc(dst, kp)
			ke2 := len(dst)
			dst = vti.enc(dst, vp)
			spans = append(spans, span{s, ke2, len(dst)})
		}
		if n > 1 {
			slices.SortFunc(spans, func(a, b span) int {
				if c := bytes.Compare(dst[a.start:a.keyEnd], dst[b.start:b.keyEnd]); c != 0 {
					return c
				}
				return bytes.Compare(dst[a.keyEnd:a.end], dst[b.keyEnd:b.end])
			})
			tmp := slices.Clone(dst[base:])
			w := base
			for _, s := range spans {
				w += copy(dst[w:], tmp[s.start-base:s.end-base])
			}
		}
		return dst
	}
	ti.dec = func(src []byte, p unsafe.Pointer) (int, error) {
		l, pos := uvarint(src)
		if pos == 0 {
			return 0, errLen
		}
		if l == 0 {
			return pos, nil
		}
		n := l - 1
		if !checkCount(n, len(src)-pos, satAdd(kti.minSize, vti.minSize)) {
			return 0, errLen
		}
		m := reflect.MakeMapWithSize(t, int(n))
		k, v := reflect.New(kt), reflect.New(vt)
		kp, vp := k.UnsafePointer(), v.UnsafePointer()
		ke, ve := k.Elem(), v.Elem()
		for i := range int(n) {
			// Reset the scratch values: decoders expect zeroed targets.
			ke.SetZero()
			ve.SetZero()
			mk, err := kti.dec(src[pos:], kp)
			if err != nil {
				return 0, fmt.Errorf("codec: decoding key of entry %d of %v: %w", i, t, err)
			}
			pos += mk
			mv, err := vti.dec(src[pos:], vp)
			if err != nil {
				return 0, fmt.Errorf("codec: decoding value of entry %d of %v: %w", i, t, err)
			}
			pos += mv
			m.SetMapIndex(ke, ve)
		}
		*(*unsafe.Pointer)(p) = m.UnsafePointer()
		return pos, nil
	}
	return ti, nil
}
