package statebackend_test

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/statebackend"
)

// tableContents restores a snapshot stream into a new backend with one table
// of V named name and returns its entries.
func tableContents[V any](t *testing.T, stream []byte, name string) map[string]V {
	t.Helper()
	b, _ := backend(t)
	require.NoError(t, b.Restore(bytes.NewReader(stream)))
	tb := statebackend.NewTable[string, V](b.Range().Len())
	_, err := b.Register(name, tb)
	require.NoError(t, err)
	out := map[string]V{}
	for kg := range tb.NumKeyGroups() {
		for k, v := range tb.KeyGroup(kg) {
			out[k] = v
		}
	}
	return out
}

// A frozen table is written as it was when SnapshotAsync returned, however
// the task changes it before, and while, the write runs on another
// goroutine (under -race this also checks the two never share memory
// unsafely).
func TestSnapshotAsyncFreezesValueTable(t *testing.T) {
	b, _ := backend(t)
	tb := statebackend.NewTable[string, int64](b.Range().Len())
	_, err := b.Register("counts", tb)
	require.NoError(t, err)
	want := map[string]int64{}
	put := func(k string, v int64) {
		kg := b.KeyGroupOf(k) - b.Range().Start
		tb.Put(kg, k, v)
	}
	for i := range 2000 {
		k := fmt.Sprint("k", i)
		put(k, int64(i))
		want[k] = int64(i)
	}
	_, frozen := tb.Freeze()
	require.True(t, frozen, "a table of int64 needs no copy-on-write promise to freeze")
	write, err := b.SnapshotAsync()
	require.NoError(t, err)

	var buf bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		require.NoError(t, write(&buf))
	}()
	// The task goes on: every key changes, some go, new ones come.
	for i := range 2000 {
		k := fmt.Sprint("k", i)
		kg := b.KeyGroupOf(k) - b.Range().Start
		if i%3 == 0 {
			tb.Delete(kg, k)
		} else {
			put(k, -1)
		}
		put(fmt.Sprint("new", i), 7)
	}
	wg.Wait()
	require.Equal(t, want, tableContents[int64](t, buf.Bytes(), "counts"))

	// The next snapshot sees the changes.
	var again bytes.Buffer
	require.NoError(t, b.Snapshot(&again))
	got := tableContents[int64](t, again.Bytes(), "counts")
	require.Len(t, got, 2000+2000-667)
	require.Equal(t, int64(-1), got["k1"])
	require.NotContains(t, got, "k0")
}

type box struct{ N int }

// A table with pointers in its values and no copy-on-write promise cannot
// be frozen: it is encoded at once, so a change through a pointer after
// SnapshotAsync returned is not in the snapshot.
func TestSnapshotAsyncEncodesPointerTableAtOnce(t *testing.T) {
	b, _ := backend(t)
	tb := statebackend.NewTable[string, *box](b.Range().Len())
	_, err := b.Register("boxes", tb)
	require.NoError(t, err)
	_, ok := tb.Freeze()
	require.False(t, ok, "a table of pointers without SetCopyOnWrite must not freeze")

	bx := &box{N: 1}
	tb.Put(b.KeyGroupOf("a")-b.Range().Start, "a", bx)
	write, err := b.SnapshotAsync()
	require.NoError(t, err)
	bx.N = 2 // in place, as an owner without copy-on-write may
	var buf bytes.Buffer
	require.NoError(t, write(&buf))
	got := tableContents[*box](t, buf.Bytes(), "boxes")
	require.Equal(t, 1, got["a"].N)
}

// derivedState is a state its operator rebuilds after a restore.
type derivedState struct {
	*statebackend.Table[string, int64]
	derived bool
}

func (d derivedState) Derived() bool { return d.derived }

// A derived state is left out of snapshots while it says so.
func TestDerivedStateIsNotSnapshotted(t *testing.T) {
	for _, derived := range []bool{false, true} {
		t.Run(fmt.Sprint("derived=", derived), func(t *testing.T) {
			b, _ := backend(t)
			d := derivedState{statebackend.NewTable[string, int64](b.Range().Len()), derived}
			_, err := b.Register("d", d)
			require.NoError(t, err)
			d.Put(b.KeyGroupOf("x")-b.Range().Start, "x", 5)
			var buf bytes.Buffer
			require.NoError(t, b.Snapshot(&buf))
			got := tableContents[int64](t, buf.Bytes(), "d")
			if derived {
				require.Empty(t, got)
			} else {
				require.Equal(t, map[string]int64{"x": 5}, got)
			}
		})
	}
}

func TestHoldsNoReferences(t *testing.T) {
	type flat struct {
		A int64
		S string
		F [2]float64
	}
	type deep struct {
		A int
		P *int
	}
	for _, c := range []struct {
		v    any
		want bool
	}{{int64(0), true}, {"", true}, {flat{}, true}, {deep{}, false}, {[]int{}, false}, {map[int]int{}, false}, {(*int)(nil), false}} {
		require.Equal(t, c.want, statebackend.HoldsNoReferences(reflect.TypeOf(c.v)), "%T", c.v)
	}
}

// panicCodec panics on Append, as a user codec may.
type panicCodec struct{}

func (panicCodec) Append([]byte, int64) []byte           { panic("codec exploded") }
func (panicCodec) Decode(src []byte) (int64, int, error) { return 0, 0, nil }

// A codec that panics in the asynchronous part fails the snapshot's write
// with an error naming the state (the checkpoint is declined), instead of
// crashing the upload goroutine.
func TestSnapshotAsyncEncodingPanicIsAnError(t *testing.T) {
	b, _ := backend(t)
	tb := statebackend.NewTable[string, int64](b.Range().Len())
	tb.SetCodecs(nil, panicCodec{})
	_, err := b.Register("boom", tb)
	require.NoError(t, err)
	tb.Put(b.KeyGroupOf("k")-b.Range().Start, "k", 1)
	write, err := b.SnapshotAsync()
	require.NoError(t, err, "the table is frozen, so nothing is encoded yet")
	err = write(&bytes.Buffer{})
	require.ErrorContains(t, err, `state "boom"`)
	require.ErrorContains(t, err, "codec exploded")
}
