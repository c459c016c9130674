package statebackend_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/statebackend"
)

// FuzzRestore restores arbitrary bytes: as a whole snapshot, and as the
// data of each state kind behind the checksum. Errors must be the
// documented ones; nothing may panic.
//
//	go test ./internal/statebackend -run '^$' -fuzz FuzzRestore -fuzztime 60s
func FuzzRestore(f *testing.F) {
	snap := smallSnapshot(f)
	f.Add(snap)
	f.Add(snap[:len(snap)/2])
	b, now := newStringBackend(f, 1, 1, 0)
	s := newAllStates(f, b, true)
	fill(s, keys(3), now)
	for _, st := range []statebackend.Snapshotter{s.val, s.ttl, s.list, s.m, s.ns, s.table} {
		data, err := st.SnapshotKeyGroup(0, nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	// A list with an expiry per element (the map above has them too).
	tl := statebackend.NewList[string, string](b, statebackend.TTL{TTLMillis: 100})
	for i, k := range keys(3) {
		b.SetCurrentKey(k)
		*now = 1000 + int64(i)
		tl.AddAll([]string{k, "x"})
		*now += 50
		tl.Add(k + k)
	}
	data, err := tl.SnapshotKeyGroup(0, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, _ := newStringBackend(t, 4, 1, 0)
		s := newAllStates(t, b, false)
		if _, err := b.Register("val", s.val); err != nil {
			t.Fatal(err)
		}
		err := b.Restore(bytes.NewReader(data))
		if err != nil && !errors.Is(err, statebackend.ErrCorruptSnapshot) && !errors.Is(err, statebackend.ErrUnsupportedVersion) &&
			!strings.Contains(err.Error(), "maxParallelism") && !strings.Contains(err.Error(), "snapshotted as") {
			t.Fatalf("unexpected error: %v", err)
		}
		if err == nil {
			// Whatever was restored registers (or fails cleanly) and
			// snapshots again.
			for _, r := range []struct {
				name string
				st   any
			}{{"ttl", s.ttl}, {"list", s.list}, {"map", s.m}, {"red", s.red}, {"agg", s.agg}, {"ns", s.ns}, {"table", s.table}} {
				_, _ = b.Register(r.name, r.st)
			}
			if err := b.Snapshot(io.Discard); err != nil {
				t.Fatalf("snapshot after restore: %v", err)
			}
		}

		// The states' own decoders, behind the checksum.
		h, _ := keygroup.HasherFor[string](nil)
		b1 := statebackend.NewKeyed(h, 1, keygroup.RangeFor(1, 1, 0))
		s1 := newAllStates(t, b1, true)
		for _, st := range []statebackend.Snapshotter{s1.val, s1.ttl, s1.list, s1.m, s1.red, s1.agg, s1.ns, s1.table} {
			if err := st.RestoreKeyGroup(0, data); err != nil && !errors.Is(err, statebackend.ErrCorruptSnapshot) {
				t.Fatalf("%s: error not marked corrupt: %v", st.StateType(), err)
			}
		}
		if err := b1.Snapshot(io.Discard); err != nil {
			t.Fatalf("snapshot after partial restores: %v", err)
		}
	})
}
