package checkpoint

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func sampleMetadata() *Metadata {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	return &Metadata{
		JobID:     "job1",
		ID:        7,
		Kind:      KindCheckpoint,
		Triggered: t0,
		Completed: t0.Add(1500 * time.Millisecond),
		Operators: []OperatorState{{
			UID: "window-1", Name: "Window", Parallelism: 2, MaxParallelism: 128,
			Subtasks: []SubtaskState{
				{Subtask: 0, Keyed: []StateHandle{{Path: "job1/chk-7/op-0", Size: 10}, {Path: "job1/shared/sst-1", Size: 99, Shared: true}}, Watermark: 42},
				{Subtask: 1, Operator: []StateHandle{{Size: 3, Inline: []byte{1, 2, 3}}}, Channel: []StateHandle{{Path: "job1/chk-7/ch-1", Size: 5}}},
			},
		}},
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	defer goleak.VerifyNone(t)
	md := sampleMetadata()
	data, err := EncodeMetadata(md)
	require.NoError(t, err)
	require.Equal(t, "STROMCKP", string(data[:8]))
	got, err := DecodeMetadata("job1/chk-7/_metadata", data)
	require.NoError(t, err)
	require.Equal(t, md, got)
}

// Every single flipped byte is refused: in the version field as an unknown
// version, anywhere else as corrupt.
func TestMetadataCorruptByte(t *testing.T) {
	defer goleak.VerifyNone(t)
	data, err := EncodeMetadata(sampleMetadata())
	require.NoError(t, err)
	for i := range data {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x20
		_, err := DecodeMetadata("job1/chk-7/_metadata", bad)
		if i == 8 || i == 9 {
			require.ErrorIs(t, err, ErrUnsupportedVersion, "byte %d", i)
			continue
		}
		require.ErrorIs(t, err, ErrCorruptMetadata, "byte %d", i)
		require.ErrorContains(t, err, "job1/chk-7/_metadata")
	}
}

func TestMetadataTruncated(t *testing.T) {
	defer goleak.VerifyNone(t)
	data, err := EncodeMetadata(sampleMetadata())
	require.NoError(t, err)
	for n := range len(data) {
		_, err := DecodeMetadata("m", data[:n])
		require.ErrorIs(t, err, ErrCorruptMetadata, "cut at %d", n)
	}
	_, err = DecodeMetadata("m", append(data, 0))
	require.ErrorIs(t, err, ErrCorruptMetadata, "trailing bytes")
}

func TestMetadataUnknownVersion(t *testing.T) {
	defer goleak.VerifyNone(t)
	data, err := EncodeMetadata(sampleMetadata())
	require.NoError(t, err)
	binary.BigEndian.PutUint16(data[8:], MetadataVersion+1)
	_, err = DecodeMetadata("job1/chk-7/_metadata", data)
	require.ErrorIs(t, err, ErrUnsupportedVersion)
	require.False(t, errors.Is(err, ErrCorruptMetadata))
	require.ErrorContains(t, err, "job1/chk-7/_metadata")
	require.ErrorContains(t, err, "version 2")
}
