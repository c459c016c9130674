package fdpass_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/fdpass"
)

// Other headers share the preamble's format: a reader dispatches on the
// magic and reads exactly the header, leaving the stream after it.
func TestHeadersShareThePreambleFormat(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, fdpass.WriteHeader(&b, "STRMTST1", "address", "10.0.0.1:6121", 64))
	b.WriteString("rest")
	magic, err := fdpass.ReadMagic(&b)
	require.NoError(t, err)
	require.Equal(t, "STRMTST1", magic)
	v, err := fdpass.ReadValue(&b, "address", 64)
	require.NoError(t, err)
	require.Equal(t, "10.0.0.1:6121", v)
	require.Equal(t, "rest", b.String())

	require.Error(t, fdpass.WriteHeader(&b, "SHORT", "address", "x", 64), "a magic of other than 8 bytes")
	require.ErrorIs(t, fdpass.WriteHeader(&b, "STRMTST1", "address", strings.Repeat("x", 65), 64), fdpass.ErrBadPreamble)
	b.Reset()
	require.NoError(t, fdpass.WriteHeader(&b, "STRMTST1", "address", strings.Repeat("x", 65), 100))
	_, _ = fdpass.ReadMagic(&b)
	_, err = fdpass.ReadValue(&b, "address", 64)
	require.ErrorIs(t, err, fdpass.ErrBadPreamble, "a reader bounds the length by its own max")
	require.ErrorContains(t, err, "address of 65 bytes, at most 64")
}

func TestSocketPairIsConnectedBothWays(t *testing.T) {
	a, b, err := fdpass.SocketPair()
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()
	_, err = a.Write([]byte("ping"))
	require.NoError(t, err)
	require.NoError(t, a.CloseWrite())
	got, err := io.ReadAll(b)
	require.NoError(t, err)
	require.Equal(t, "ping", string(got))
	_, err = b.Write([]byte("pong"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(a, buf)
	require.NoError(t, err)
	require.Equal(t, "pong", string(buf))
}
