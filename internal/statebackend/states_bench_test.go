package statebackend_test

import (
	"bytes"
	"testing"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/statebackend"
)

// Benchmarks of list and map state operations, without TTL and with a TTL
// long enough that nothing expires (the real clock, as in production).
//
//	go test ./internal/statebackend -run '^$' -bench 'List|Map' -benchmem

const benchKeys = 1024

var benchTTLs = []struct {
	name string
	ttl  statebackend.TTL
}{
	{"noTTL", statebackend.TTL{}},
	{"TTL", statebackend.TTL{TTLMillis: 1 << 40}},
}

func benchKeyed(b *testing.B) *statebackend.Keyed[int64] {
	h, err := keygroup.HasherFor[int64](nil)
	if err != nil {
		b.Fatal(err)
	}
	return statebackend.NewKeyed(h, keygroup.DefaultMaxParallelism, keygroup.RangeFor(keygroup.DefaultMaxParallelism, 1, 0))
}

// BenchmarkListAdd: one Add per op over 1024 keys; every 32nd op of a key
// clears its list instead, so lists stay short.
func BenchmarkListAdd(b *testing.B) {
	for _, tc := range benchTTLs {
		b.Run(tc.name, func(b *testing.B) {
			kb := benchKeyed(b)
			l := statebackend.NewList[int64, int64](kb, tc.ttl)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				kb.SetCurrentKey(int64(i % benchKeys))
				if (i/benchKeys)%32 == 31 {
					l.Clear()
				} else {
					l.Add(int64(i))
				}
				i++
			}
		})
	}
}

// BenchmarkListGet: Get of a 16-element list per op.
func BenchmarkListGet(b *testing.B) {
	for _, tc := range benchTTLs {
		b.Run(tc.name, func(b *testing.B) {
			kb := benchKeyed(b)
			l := statebackend.NewList[int64, int64](kb, tc.ttl)
			for k := range int64(benchKeys) {
				kb.SetCurrentKey(k)
				for j := range int64(16) {
					l.Add(j)
				}
			}
			b.ReportAllocs()
			n, i := 0, 0
			for b.Loop() {
				kb.SetCurrentKey(int64(i % benchKeys))
				n += len(l.Get())
				i++
			}
			if n == 0 {
				b.Fatal("empty lists")
			}
		})
	}
}

// BenchmarkMapPut: one Put per op over 1024 keys × 64 map keys
// (overwrites once warm).
func BenchmarkMapPut(b *testing.B) {
	for _, tc := range benchTTLs {
		b.Run(tc.name, func(b *testing.B) {
			kb := benchKeyed(b)
			m := statebackend.NewMap[int64, int64, int64](kb, tc.ttl)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				kb.SetCurrentKey(int64(i % benchKeys))
				m.Put(int64(i/benchKeys%64), int64(i))
				i++
			}
		})
	}
}

// BenchmarkMapGet: one Get per op from maps of 64 entries.
func BenchmarkMapGet(b *testing.B) {
	for _, tc := range benchTTLs {
		b.Run(tc.name, func(b *testing.B) {
			kb := benchKeyed(b)
			m := fillMaps(kb, tc.ttl)
			b.ReportAllocs()
			var sum int64
			i := 0
			for b.Loop() {
				kb.SetCurrentKey(int64(i % benchKeys))
				v, _ := m.Get(int64(i / benchKeys % 64))
				sum += v
				i++
			}
		})
	}
}

// BenchmarkMapEntries: Entries of a 64-entry map per op, iterated.
func BenchmarkMapEntries(b *testing.B) {
	for _, tc := range benchTTLs {
		b.Run(tc.name, func(b *testing.B) {
			kb := benchKeyed(b)
			m := fillMaps(kb, tc.ttl)
			b.ReportAllocs()
			var sum int64
			i := 0
			for b.Loop() {
				kb.SetCurrentKey(int64(i % benchKeys))
				for _, v := range m.Entries() {
					sum += v
				}
				i++
			}
		})
	}
}

func fillMaps(kb *statebackend.Keyed[int64], ttl statebackend.TTL) *statebackend.Map[int64, int64, int64] {
	m := statebackend.NewMap[int64, int64, int64](kb, ttl)
	for k := range int64(benchKeys) {
		kb.SetCurrentKey(k)
		for j := range int64(64) {
			m.Put(j, j*k)
		}
	}
	return m
}

// BenchmarkSnapshotRestoreListMap: a snapshot, and its restore, of 16K
// keys with a 16-element list and a 16-entry map each (512K elements).
func BenchmarkSnapshotRestoreListMap(b *testing.B) {
	for _, tc := range benchTTLs {
		kb := benchKeyed(b)
		l := statebackend.NewList[int64, int64](kb, tc.ttl)
		m := statebackend.NewMap[int64, int64, int64](kb, tc.ttl)
		register := func(kb *statebackend.Keyed[int64], l, m any) {
			if _, err := kb.Register("l", l); err != nil {
				b.Fatal(err)
			}
			if _, err := kb.Register("m", m); err != nil {
				b.Fatal(err)
			}
		}
		register(kb, l, m)
		for k := range int64(16 << 10) {
			kb.SetCurrentKey(k)
			for j := range int64(16) {
				l.Add(j * k)
				m.Put(j, j*k)
			}
		}
		b.Run("snapshot/"+tc.name, func(b *testing.B) {
			var w countingWriter
			b.ReportAllocs()
			for b.Loop() {
				w.n = 0
				if err := kb.Snapshot(&w); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(w.n)
		})
		var buf bytes.Buffer
		if err := kb.Snapshot(&buf); err != nil {
			b.Fatal(err)
		}
		data := buf.Bytes()
		b.Run("restore/"+tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				nb := benchKeyed(b)
				register(nb, statebackend.NewList[int64, int64](nb, tc.ttl), statebackend.NewMap[int64, int64, int64](nb, tc.ttl))
				b.StartTimer()
				if err := nb.Restore(bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
