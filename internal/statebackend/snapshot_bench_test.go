package statebackend_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/statebackend"
)

// countingWriter discards what it is given and counts it.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

const benchEntries = 1 << 20

// benchBackend is a backend owning all 128 key groups with a ValueState of
// benchEntries int64 keys and values.
func benchBackend(b *testing.B) *statebackend.Keyed[int64] {
	h, err := keygroup.HasherFor[int64](nil)
	if err != nil {
		b.Fatal(err)
	}
	kb := statebackend.NewKeyed(h, keygroup.DefaultMaxParallelism, keygroup.RangeFor(keygroup.DefaultMaxParallelism, 1, 0))
	v := statebackend.NewValue[int64, int64](kb, statebackend.TTL{})
	if _, err := kb.Register("v", v); err != nil {
		b.Fatal(err)
	}
	for k := range int64(benchEntries) {
		kb.SetCurrentKey(k)
		v.Update(k * 7919)
	}
	return kb
}

// BenchmarkSnapshotValueInt64: one snapshot of 1M entries (≈ 1M·(key +
// value) varints) per op.
//
//	go test ./internal/statebackend -run '^$' -bench Snapshot -benchtime 5x
func BenchmarkSnapshotValueInt64(b *testing.B) {
	kb := benchBackend(b)
	var w countingWriter
	start := time.Now()
	b.ResetTimer()
	for range b.N {
		w.n = 0
		if err := kb.Snapshot(&w); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start).Seconds()
	b.SetBytes(w.n)
	b.ReportMetric(float64(benchEntries)*float64(b.N)/el/1e6, "Mentries/s")
	b.ReportMetric(float64(w.n)/benchEntries, "B/entry")
}

// BenchmarkRestoreValueInt64: restoring that snapshot into a backend with
// the state registered.
func BenchmarkRestoreValueInt64(b *testing.B) {
	kb := benchBackend(b)
	var buf bytes.Buffer
	if err := kb.Snapshot(&buf); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	h, _ := keygroup.HasherFor[int64](nil)
	b.SetBytes(int64(len(data)))
	var el time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		nb := statebackend.NewKeyed(h, keygroup.DefaultMaxParallelism, keygroup.RangeFor(keygroup.DefaultMaxParallelism, 1, 0))
		if _, err := nb.Register("v", statebackend.NewValue[int64, int64](nb, statebackend.TTL{})); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		if err := nb.Restore(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		el += time.Since(t0)
	}
	b.ReportMetric(float64(benchEntries)*float64(b.N)/el.Seconds()/1e6, "Mentries/s")
}

// BenchmarkCheckpointValueInt64 is one checkpoint of the 1M-entry value
// state after 1 % of its keys changed (10 486 updates, timed apart): the
// synchronous capture plus the encoding, full against incremental (the
// first incremental checkpoint, a base, is taken before the timer starts).
//
//	go test ./internal/statebackend -run '^$' -bench CheckpointValue -count 5
func BenchmarkCheckpointValueInt64(b *testing.B) {
	for _, tc := range []struct {
		name string
		mode statebackend.SnapshotMode
	}{{"full", statebackend.SnapshotFull}, {"incremental", statebackend.SnapshotDelta}} {
		b.Run(tc.name, func(b *testing.B) {
			kb := benchBackend(b)
			st, _ := kb.Lookup("v")
			v := st.(*statebackend.Value[int64, int64])
			var w countingWriter
			if write, _, err := kb.SnapshotAsyncMode(statebackend.SnapshotBase); err != nil || write(&w) != nil {
				b.Fatal("base", err)
			}
			const changed = benchEntries / 100
			var sync, total time.Duration
			for i := range b.N {
				b.StopTimer()
				for j := range int64(changed) {
					kb.SetCurrentKey((int64(i)*changed + j*97) % benchEntries)
					v.Update(j)
				}
				b.StartTimer()
				w.n = 0
				t0 := time.Now()
				write, delta, err := kb.SnapshotAsyncMode(tc.mode)
				if err != nil {
					b.Fatal(err)
				}
				sync += time.Since(t0)
				if err := write(&w); err != nil {
					b.Fatal(err)
				}
				total += time.Since(t0)
				if delta != (tc.mode == statebackend.SnapshotDelta) {
					b.Fatalf("delta %v in mode %v", delta, tc.mode)
				}
			}
			b.ReportMetric(float64(w.n), "bytes/ckp")
			b.ReportMetric(float64(sync.Microseconds())/float64(b.N), "sync-µs/ckp")
			b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/ckp")
		})
	}
}
