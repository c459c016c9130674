// Package keygroup maps keys to key groups and key groups to subtasks.
//
// A key is hashed (stably: the same key gives the same hash in every process
// and every version of Strom) into one of maxParallelism key groups; subtask i
// of p owns a contiguous range of key groups. Keyed state is stored and
// snapshotted per key group, so a job restored with another parallelism only
// reassigns ranges (Flink's KeyGroupRangeAssignment).
package keygroup

import (
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// DefaultMaxParallelism is the number of key groups when the job does not set one.
const DefaultMaxParallelism = 128

// UpperBoundMaxParallelism bounds maxParallelism so a key group fits in 15 bits
// (room for a 2-byte key-group prefix in LSM state keys).
const UpperBoundMaxParallelism = 1 << 15

// Range is the inclusive range [Start, End] of key groups owned by one subtask.
type Range struct {
	Start, End int
}

// Len is the number of key groups in the range.
func (r Range) Len() int { return r.End - r.Start + 1 }

// Contains reports whether kg lies in the range.
func (r Range) Contains(kg int) bool { return kg >= r.Start && kg <= r.End }

func (r Range) String() string { return fmt.Sprintf("[%d..%d]", r.Start, r.End) }

// RangeFor returns the key groups owned by subtask index of parallelism.
func RangeFor(maxParallelism, parallelism, index int) Range {
	start := (index*maxParallelism + parallelism - 1) / parallelism
	end := ((index+1)*maxParallelism - 1) / parallelism
	return Range{Start: start, End: end}
}

// OperatorIndex returns the subtask that owns key group kg.
func OperatorIndex(maxParallelism, parallelism, kg int) int {
	if maxParallelism&(maxParallelism-1) == 0 {
		// A power of two (the default 128): a shift instead of a division.
		return (kg * parallelism) >> bits.TrailingZeros(uint(maxParallelism))
	}
	return kg * parallelism / maxParallelism
}

// Of returns the key group of a key hash.
func Of(hash uint64, maxParallelism int) int {
	if maxParallelism&(maxParallelism-1) == 0 {
		// A power of two (the default 128): the same result as the modulo,
		// without a 64-bit division on every record.
		return int(hash & uint64(maxParallelism-1))
	}
	return int(hash % uint64(maxParallelism))
}

// Validate checks a (parallelism, maxParallelism) pair.
func Validate(parallelism, maxParallelism int) error {
	if maxParallelism < 1 || maxParallelism > UpperBoundMaxParallelism {
		return fmt.Errorf("maxParallelism %d out of range [1, %d]", maxParallelism, UpperBoundMaxParallelism)
	}
	if parallelism < 1 {
		return fmt.Errorf("parallelism %d must be at least 1", parallelism)
	}
	if parallelism > maxParallelism {
		return fmt.Errorf("parallelism %d exceeds maxParallelism %d", parallelism, maxParallelism)
	}
	return nil
}

// Hasher hashes keys of type K stably. The hash depends only on the key's
// value (not on the process, the Go version or map iteration order), so key
// groups computed by one process agree with every other.
type Hasher[K comparable] func(K) uint64

// fmix64 is MurmurHash3's finaliser: a cheap, well-mixing bijection for
// integer keys, which are the common case (ids).
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// HasherFor returns a stable hasher for K. Integers, floats, bools and
// strings are hashed directly; other comparable types are hashed through
// encode, which must produce the same bytes for equal keys (typically a
// codec.Codec's Append). encode may be nil for basic kinds.
func HasherFor[K comparable](encode func([]byte, K) []byte) (Hasher[K], error) {
	var zero K
	t := reflect.TypeOf(&zero).Elem()
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64, reflect.Uintptr:
		return func(k K) uint64 { return fmix64(*(*uint64)(unsafe.Pointer(&k))) }, nil
	case reflect.Int32, reflect.Uint32:
		return func(k K) uint64 { return fmix64(uint64(*(*uint32)(unsafe.Pointer(&k)))) }, nil
	case reflect.Int16, reflect.Uint16:
		return func(k K) uint64 { return fmix64(uint64(*(*uint16)(unsafe.Pointer(&k)))) }, nil
	case reflect.Int8, reflect.Uint8, reflect.Bool:
		return func(k K) uint64 { return fmix64(uint64(*(*uint8)(unsafe.Pointer(&k)))) }, nil
	case reflect.Float64:
		return func(k K) uint64 {
			f := *(*float64)(unsafe.Pointer(&k))
			if f == 0 { // +0 and -0 are equal keys
				f = 0
			}
			return fmix64(math.Float64bits(f))
		}, nil
	case reflect.Float32:
		return func(k K) uint64 {
			f := *(*float32)(unsafe.Pointer(&k))
			if f == 0 {
				f = 0
			}
			return fmix64(uint64(math.Float32bits(f)))
		}, nil
	case reflect.String:
		return func(k K) uint64 { return xxhash.Sum64String(*(*string)(unsafe.Pointer(&k))) }, nil
	}
	if encode == nil {
		return nil, fmt.Errorf("keygroup: no stable hash for key type %v: give the key a codec", t)
	}
	return func(k K) uint64 {
		var buf [64]byte
		return xxhash.Sum64(encode(buf[:0], k))
	}, nil
}
