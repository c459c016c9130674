package statebackend_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/statebackend"
)

// dyn decodes b with sc, which must consume all of it.
func dyn(t *testing.T, sc *codec.Schema, b []byte) any {
	t.Helper()
	v, n, err := codec.DecodeDynamic(sc, b)
	require.NoError(t, err)
	require.Equal(t, len(b), n)
	return v
}

// A snapshot records every state with its type tag and schema, and its
// entries can be read back with those alone.
func TestSnapshotContentsWithoutGoTypes(t *testing.T) {
	ks := keys(40)
	b, now := newStringBackend(t, 8, 1, 0)
	s := newAllStates(t, b, true)
	fill(s, ks, now)
	// A registered state without entries is listed too.
	_, err := b.Register("empty", statebackend.NewValue[string, bool](b, statebackend.TTL{}))
	require.NoError(t, err)
	data := snapshot(t, b)

	c, err := statebackend.ReadSnapshotContents(bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, 4, c.Info.Version)
	var names []string
	schemas := map[string]*statebackend.StateSchema{}
	for _, st := range c.States {
		names = append(names, st.Name)
		require.NotNil(t, st.Schema, st.Name)
		schemas[st.Name] = st.Schema
	}
	require.Equal(t, []string{"val", "ttl", "list", "map", "red", "agg", "ns", "table", "empty"}, names)
	require.Equal(t, "value<string,int64>", c.States[0].Type)
	require.Equal(t, "value", schemas["val"].Kind)
	require.Equal(t, codec.KindString, schemas["val"].Key.Kind)
	require.Equal(t, codec.KindInt, schemas["val"].Value.Kind)
	require.Equal(t, codec.KindStruct, schemas["agg"].Value.Kind, "the accumulator")
	require.Equal(t, codec.KindStruct, schemas["ns"].Namespace.Kind)
	require.Equal(t, codec.KindString, schemas["map"].MapKey.Kind)

	type kv = map[string]any
	got := map[string]map[string][]any{} // state → key → entries
	keysPerState := map[string]int{}
	for _, sec := range c.Sections {
		n, ok := sec.NumKeys()
		require.True(t, ok, sec.State)
		keysPerState[sec.State] += n
		sc := schemas[sec.State]
		require.NoError(t, sec.Entries(sc, func(e statebackend.Entry) error {
			k := dyn(t, sc.Key, e.Key).(string)
			require.Equal(t, b.KeyGroupOf(k), e.KeyGroup, "key %s", k)
			out := kv{"value": dyn(t, sc.Value, e.Value), "expiry": e.Expiry}
			if sc.Namespace != nil {
				out["ns"] = dyn(t, sc.Namespace, e.Namespace)
			}
			if sc.MapKey != nil {
				out["mk"] = dyn(t, sc.MapKey, e.MapKey)
			}
			if got[sec.State] == nil {
				got[sec.State] = map[string][]any{}
			}
			got[sec.State][k] = append(got[sec.State][k], out)
			return nil
		}))
	}
	for _, name := range []string{"val", "ttl", "list", "map", "red", "agg", "table"} {
		require.Equal(t, len(ks), keysPerState[name], name)
	}
	for i, k := range ks {
		require.Equal(t, []any{kv{"value": int64(i) * 1_000_003, "expiry": int64(0)}}, got["val"][k])
		require.Equal(t, []any{kv{"value": "t" + k, "expiry": int64(1100 + i%7)}}, got["ttl"][k], "TTL expiry kept")
		require.Equal(t, []any{
			kv{"value": k, "expiry": int64(0)}, kv{"value": "x", "expiry": int64(0)}, kv{"value": k + k, "expiry": int64(0)},
		}, got["list"][k], "one entry per element, in order")
		require.ElementsMatch(t, []any{
			kv{"mk": "a", "value": int64(i), "expiry": int64(2000 + i%7)},
			kv{"mk": "b" + k, "value": int64(-i), "expiry": int64(2000 + i%7)},
		}, got["map"][k], "one entry per map entry")
		require.Equal(t, []any{kv{"value": map[string]any{"Sum": int64(2*i + 2), "N": int64(2)}, "expiry": int64(0)}}, got["agg"][k])
		require.Len(t, got["ns"][k], i%3+1)
		require.Equal(t, []any{kv{"value": []any{int64(i), int64(2 * i)}, "expiry": int64(0)}}, got["table"][k])
	}
	require.Equal(t, kv{"ns": kv{"Start": int64(0), "End": int64(10), "Name": "count"}, "value": []any{int64(0), int64(0)}, "expiry": int64(0)},
		got["ns"][ks[0]][0])

	// Without a schema, entries cannot be split; the counts still read.
	err = c.Sections[0].Entries(nil, func(statebackend.Entry) error { return nil })
	require.ErrorIs(t, err, statebackend.ErrNoEntries)
}

// toVersion3 rewrites a full version 4 stream as version 3 wrote it: no
// flags in the header, no kind byte in the sections (and the checksums
// over them).
func toVersion3(t *testing.T, v4 []byte) []byte {
	t.Helper()
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	const magic = len("STRMKEYS")
	require.Equal(t, byte(4), v4[magic])
	d := bytes.NewReader(v4[magic+1:])
	var fields []uint64
	for range 4 {
		v, err := binary.ReadUvarint(d)
		require.NoError(t, err)
		fields = append(fields, v)
	}
	require.Zero(t, fields[3], "a full stream")
	out := append([]byte{}, v4[:magic]...)
	out = append(out, 3)
	for _, f := range fields[:3] {
		out = binary.AppendUvarint(out, f)
	}
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out[magic:], castagnoli))
	_, err := d.Seek(4, io.SeekCurrent) // the old header's checksum
	require.NoError(t, err)
	// The schema section is unchanged.
	tag, err := d.ReadByte()
	require.NoError(t, err)
	require.Equal(t, byte('S'), tag)
	n, err := binary.ReadUvarint(d)
	require.NoError(t, err)
	start := len(v4) - d.Len()
	out = append(out, 'S')
	out = binary.AppendUvarint(out, n)
	out = append(out, v4[start:start+int(n)+4]...)
	_, err = d.Seek(int64(n)+4, io.SeekCurrent)
	require.NoError(t, err)
	str := func(r *bytes.Reader) []byte {
		n, err := binary.ReadUvarint(r)
		require.NoError(t, err)
		b := make([]byte, n)
		_, err = io.ReadFull(r, b)
		require.NoError(t, err)
		return b
	}
	for {
		tag, err := d.ReadByte()
		require.NoError(t, err)
		if tag == 'E' {
			return append(append(out, tag), v4[len(v4)-d.Len():]...)
		}
		require.Equal(t, byte('G'), tag)
		kg, err := binary.ReadUvarint(d)
		require.NoError(t, err)
		p := bytes.NewReader(str(d))
		_, err = d.Seek(4, io.SeekCurrent)
		require.NoError(t, err)
		secs, err := binary.ReadUvarint(p)
		require.NoError(t, err)
		payload := binary.AppendUvarint(nil, secs)
		for range secs {
			name, typ := str(p), str(p)
			kind, err := p.ReadByte()
			require.NoError(t, err)
			require.Equal(t, byte('F'), kind)
			data := str(p)
			for _, b := range [][]byte{name, typ, data} {
				payload = binary.AppendUvarint(payload, uint64(len(b)))
				payload = append(payload, b...)
			}
		}
		chunk := append([]byte{'G'}, binary.AppendUvarint(nil, kg)...)
		chunk = binary.AppendUvarint(chunk, uint64(len(payload)))
		chunk = append(chunk, payload...)
		out = append(out, chunk...)
		out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(chunk, castagnoli))
	}
}

// toVersion2 rewrites a version 3 stream as version 2 wrote it: no schema
// section, version byte 2 (and the header checksum over it).
func toVersion2(t *testing.T, v3 []byte) []byte {
	t.Helper()
	const magic = len("STRMKEYS")
	d := bytes.NewReader(v3[magic+1:])
	for range 3 {
		_, err := binary.ReadUvarint(d)
		require.NoError(t, err)
	}
	hdrEnd := len(v3) - d.Len() + 4 // header fields, then their crc
	require.Equal(t, byte('S'), v3[hdrEnd])
	d = bytes.NewReader(v3[hdrEnd+1:])
	n, err := binary.ReadUvarint(d)
	require.NoError(t, err)
	secEnd := len(v3) - d.Len() + int(n) + 4
	out := append([]byte{}, v3[:hdrEnd-4]...)
	out[magic] = 2
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out[magic:], crc32.MakeTable(crc32.Castagnoli)))
	return append(out, v3[secEnd:]...)
}

// Version 2 snapshots (no schema section) still restore and read.
func TestRestoreVersion2(t *testing.T) {
	ks := keys(50)
	b, now := newStringBackend(t, 4, 1, 0)
	fill(newAllStates(t, b, true), ks, now)
	v2 := toVersion2(t, toVersion3(t, snapshot(t, b)))
	info, err := statebackend.ReadSnapshotInfo(bytes.NewReader(v2))
	require.NoError(t, err)
	require.Equal(t, 2, info.Version)

	b2, now2 := newStringBackend(t, 4, 1, 0)
	s2 := newAllStates(t, b2, true)
	require.NoError(t, b2.Restore(bytes.NewReader(v2)))
	check(t, s2, ks, now2)

	c, err := statebackend.ReadSnapshotContents(bytes.NewReader(v2))
	require.NoError(t, err)
	require.Len(t, c.States, 8, "states found in the data")
	for _, st := range c.States {
		require.Nil(t, st.Schema, "version 2 records no schema")
	}
}

// Data of a struct that changed keeps its type tag (the Go type's name),
// but not its schema: restoring it fails instead of decoding garbage.
func TestRestoreChangedStructIsIncompatible(t *testing.T) {
	snap := func() []byte {
		type Count struct{ N int64 }
		b, _ := newStringBackend(t, 4, 1, 0)
		v := statebackend.NewValue[string, Count](b, statebackend.TTL{})
		_, err := b.Register("count", v)
		require.NoError(t, err)
		for i := range 20 {
			b.SetCurrentKey("k" + strconv.Itoa(i))
			v.Update(Count{N: int64(i)})
		}
		return snapshot(t, b)
	}()

	type Count struct {
		Name string
		N    int64
	}
	for _, registerFirst := range []bool{true, false} {
		b, _ := newStringBackend(t, 4, 1, 0)
		v := statebackend.NewValue[string, Count](b, statebackend.TTL{})
		require.Equal(t, "value<string,statebackend_test.Count>", v.StateType(), "the same tag as the old type")
		var err error
		if registerFirst {
			_, err = b.Register("count", v)
			require.NoError(t, err)
			err = b.Restore(bytes.NewReader(snap))
		} else {
			require.NoError(t, b.Restore(bytes.NewReader(snap)))
			_, err = b.Register("count", v)
		}
		require.ErrorIs(t, err, statebackend.ErrIncompatibleState)
		require.ErrorContains(t, err, `state "count" (value<string,statebackend_test.Count>): the encoding of its value type changed`)
		require.ErrorContains(t, err, `"name":"Name"`, "the new field is shown")
	}
}

// Restored data of a state not registered yet keeps its schema in later
// snapshots.
func TestPendingStateKeepsSchema(t *testing.T) {
	b, now := newStringBackend(t, 4, 1, 0)
	fill(newAllStates(t, b, true), keys(10), now)
	b2, _ := newStringBackend(t, 4, 1, 0)
	require.NoError(t, b2.Restore(bytes.NewReader(snapshot(t, b))))
	c, err := statebackend.ReadSnapshotContents(bytes.NewReader(snapshot(t, b2)))
	require.NoError(t, err)
	require.Len(t, c.States, 8)
	for _, st := range c.States {
		require.NotNil(t, st.Schema, st.Name)
	}

	// A state registered later is in the next snapshot's schema section
	// (which is kept between snapshots while the states do not change).
	_, err = b2.Register("extra", statebackend.NewList[string, float64](b2, statebackend.TTL{}))
	require.NoError(t, err)
	c, err = statebackend.ReadSnapshotContents(bytes.NewReader(snapshot(t, b2)))
	require.NoError(t, err)
	require.Equal(t, "extra", c.States[0].Name, "registered states first")
	require.Equal(t, "list<string,float64>", c.States[0].Type)
	require.Equal(t, codec.KindFloat64, c.States[0].Schema.Value.Kind)
	require.Len(t, c.States, 9)
}

// Codecs set by hand: the JSON codec's values are recorded as JSON (and
// read back as it); a codec without a schema makes the state's entries
// unsplittable, which Entries reports instead of guessing.
func TestSnapshotContentsCustomCodecs(t *testing.T) {
	b, _ := newStringBackend(t, 4, 1, 0)
	js := statebackend.NewValue[string, avg](b, statebackend.TTL{})
	js.SetCodec(codec.JSON[avg]())
	user := statebackend.NewValue[string, int64](b, statebackend.TTL{})
	user.SetCodec(codec.OrderedInt64())
	for _, r := range []struct {
		name string
		st   any
	}{{"json", js}, {"user", user}} {
		_, err := b.Register(r.name, r.st)
		require.NoError(t, err)
	}
	b.SetCurrentKey("k")
	js.Update(avg{Sum: 3, N: 2})
	user.Update(7)
	c, err := statebackend.ReadSnapshotContents(bytes.NewReader(snapshot(t, b)))
	require.NoError(t, err)
	require.Equal(t, codec.CodecJSON, c.States[0].Schema.Value.Codec)
	require.Equal(t, codec.CodecUser, c.States[1].Schema.Value.Codec)
	for _, sec := range c.Sections {
		sc := c.States[0].Schema
		if sec.State == "user" {
			err := sec.Entries(c.States[1].Schema, func(statebackend.Entry) error { return nil })
			require.ErrorIs(t, err, statebackend.ErrNoEntries)
			continue
		}
		n := 0
		require.NoError(t, sec.Entries(sc, func(e statebackend.Entry) error {
			n++
			require.Equal(t, "k", dyn(t, sc.Key, e.Key))
			require.JSONEq(t, `{"Sum":3,"N":2}`, string(dyn(t, sc.Value, e.Value).(json.RawMessage)))
			return nil
		}))
		require.Equal(t, 1, n)
	}
}

// FuzzSnapshotEntries reads arbitrary bytes as a snapshot stream, and as
// each kind's section data split with its schema: errors wrap
// ErrCorruptSnapshot (or ErrUnsupportedVersion, ErrNoEntries), nothing
// panics.
//
//	go test ./internal/statebackend -run '^$' -fuzz FuzzSnapshotEntries -fuzztime 60s
func FuzzSnapshotEntries(f *testing.F) {
	b, now := newStringBackend(f, 1, 1, 0)
	fill(newAllStates(f, b, true), keys(3), now)
	var buf bytes.Buffer
	if err := b.Snapshot(&buf); err != nil {
		f.Fatal(err)
	}
	c, err := statebackend.ReadSnapshotContents(bytes.NewReader(buf.Bytes()))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	for _, sec := range c.Sections {
		f.Add(sec.Data)
	}
	ok := func(t *testing.T, err error) {
		if err != nil && !errors.Is(err, statebackend.ErrCorruptSnapshot) && !errors.Is(err, statebackend.ErrUnsupportedVersion) &&
			!errors.Is(err, statebackend.ErrNoEntries) {
			t.Fatalf("undocumented error: %v", err)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		_, err := statebackend.ReadSnapshotContents(bytes.NewReader(in))
		ok(t, err)
		for _, st := range c.States {
			sec := statebackend.Section{State: st.Name, Type: st.Type, Data: in}
			sec.NumKeys()
			ok(t, sec.Entries(st.Schema, func(statebackend.Entry) error { return nil }))
		}
	})
}
