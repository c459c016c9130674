package file_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/file"
)

func TestFileSplitCodec(t *testing.T) {
	codec := file.FileSource("/data/in").(strom.SplitCodec)
	want := &file.FileSplit{Path: "/data/in/part-3", Offset: 1 << 33, Line: 123456}
	b, err := codec.EncodeSplit(want)
	require.NoError(t, err)
	got, err := codec.DecodeSplit(b)
	require.NoError(t, err)
	require.Equal(t, want, got)

	_, err = codec.DecodeSplit(b[:len(b)-2])
	require.Error(t, err, "truncated")
	_, err = codec.DecodeSplit(append(b, 1))
	require.ErrorContains(t, err, "bytes after the split")
	neg, err := codec.EncodeSplit(&file.FileSplit{Path: "x", Offset: -1})
	require.NoError(t, err)
	_, err = codec.DecodeSplit(neg)
	require.ErrorContains(t, err, "negative offset")
	_, err = codec.EncodeSplit(&otherSplit{})
	require.ErrorContains(t, err, "want a *file.FileSplit")
}

type otherSplit struct{}

func (*otherSplit) SplitID() string { return "other" }
