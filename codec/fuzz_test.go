package codec

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzStruct is the shape the fuzzer decodes: every container kind, a recursive pointer
// and the inline primitives, so that corrupt input reaches every decoder.
type FuzzStruct struct {
	Bid
	Flag  bool
	Small int8
	U16   uint16
	F32   float32
	When  time.Time
	Blob  []byte
	Tags  []string
	Arr   [2]Inner
	Attrs map[string][]int32
	Next  *FuzzStruct
}

// FuzzStructDecode: Decode of arbitrary bytes must never panic; errors must wrap
// ErrCorrupt; and whatever decodes must re-encode to a canonical form that decodes to the
// same value (checked through its bytes, which also covers NaNs).
//
//	go test ./codec -run XXX -fuzz FuzzStructDecode -fuzztime 30s
func FuzzStructDecode(f *testing.F) {
	c := Of[FuzzStruct]()
	seed := FuzzStruct{
		Bid:  sampleBid(),
		Flag: true, Small: -3, U16: 600, F32: 1.5,
		When:  time.Date(2025, 3, 1, 12, 0, 0, 5, time.FixedZone("", 3600)),
		Blob:  []byte{0, 1, 2},
		Tags:  []string{"a", ""},
		Arr:   [2]Inner{{1, "x"}, {2, "y"}},
		Attrs: map[string][]int32{"k": {1, -1}, "": nil},
		Next:  &FuzzStruct{Tags: []string{}},
	}
	f.Add(c.Append(nil, seed))
	f.Add(c.Append(nil, FuzzStruct{}))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Fuzz(func(t *testing.T, in []byte) {
		v, n, err := c.Decode(in)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			if n != 0 {
				t.Fatalf("n = %d on error", n)
			}
			return
		}
		if n > len(in) {
			t.Fatalf("consumed %d of %d bytes", n, len(in))
		}
		enc := c.Append(nil, v)
		v2, n2, err := c.Decode(enc)
		if err != nil || n2 != len(enc) {
			t.Fatalf("re-decoding canonical encoding: n=%d/%d err=%v", n2, len(enc), err)
		}
		if enc2 := c.Append(nil, v2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc, enc2)
		}
	})
}
