package fdpass_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/fdpass"
)

// The preamble round-trips, has the documented layout, and ReadPreamble
// leaves every byte after it in the stream.
func TestPreambleRoundTrip(t *testing.T) {
	for _, id := range []string{"j", "job-1", strings.Repeat("x", 127), strings.Repeat("y", fdpass.MaxJobIDLen)} {
		var b bytes.Buffer
		require.NoError(t, fdpass.WritePreamble(&b, id))
		raw := b.Bytes()
		require.Equal(t, "STRMJOB1", string(raw[:8]))
		lenBytes := 1
		if len(id) >= 128 {
			lenBytes = 2
		}
		require.Len(t, raw, 8+lenBytes+len(id))
		b.WriteString("REST")
		got, err := fdpass.ReadPreamble(&b)
		require.NoError(t, err)
		require.Equal(t, id, got)
		require.Equal(t, "REST", b.String(), "nothing after the preamble may be read")
	}
}

func TestWritePreambleRejectsBadIDs(t *testing.T) {
	var b bytes.Buffer
	require.ErrorIs(t, fdpass.WritePreamble(&b, ""), fdpass.ErrBadPreamble)
	require.ErrorIs(t, fdpass.WritePreamble(&b, strings.Repeat("x", fdpass.MaxJobIDLen+1)), fdpass.ErrBadPreamble)
	require.Zero(t, b.Len(), "nothing written for a bad id")
}

func TestReadPreambleMalformed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		bad   bool   // wraps ErrBadPreamble (the peer's fault), else an I/O error
		match string // in the message
	}{
		{name: "wrong magic", in: "GET / HTTP/1.1\r\n", bad: true, match: "magic"},
		{name: "older version", in: "STRMJOB0\x03abc", bad: true, match: "magic"},
		{name: "empty id", in: "STRMJOB1\x00", bad: true, match: "empty job id"},
		{name: "too long", in: "STRMJOB1\x81\x01" + strings.Repeat("x", 129), bad: true, match: "129 bytes"},
		{name: "huge length", in: "STRMJOB1\xff\xff\xff\xff\x0f", bad: true, match: "more than 2 bytes"},
		{name: "nothing", in: "", match: "EOF"},
		{name: "truncated magic", in: "STRM", match: "unexpected EOF"},
		{name: "no length", in: "STRMJOB1", match: "unexpected EOF"},
		{name: "truncated length", in: "STRMJOB1\x81", match: "unexpected EOF"},
		{name: "truncated id", in: "STRMJOB1\x05abc", match: "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := strings.NewReader(tc.in)
			_, err := fdpass.ReadPreamble(r)
			require.Error(t, err)
			require.Equal(t, tc.bad, errors.Is(err, fdpass.ErrBadPreamble), "%v", err)
			require.ErrorContains(t, err, tc.match)
		})
	}
	// A huge length is refused after its second byte, before reading on.
	r := strings.NewReader("STRMJOB1\xff\xff\xff\xff\x0f")
	_, err := fdpass.ReadPreamble(r)
	require.Error(t, err)
	require.Equal(t, 3, r.Len(), "reads at most two length bytes")
}

// A peer that connects and stays silent is cut off by the caller's read
// deadline, and the error says it was a timeout.
func TestReadPreambleDeadline(t *testing.T) {
	client, server := tcpPair(t)
	defer client.Close()
	defer server.Close()
	require.NoError(t, server.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	_, err := fdpass.ReadPreamble(server)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout())
}

// Dialer dials with the given function and writes the preamble first.
func TestDialer(t *testing.T) {
	client, server := tcpPair(t)
	defer server.Close()
	var dialled string
	dial := fdpass.Dialer("job-7", func(_ context.Context, addr string) (net.Conn, error) {
		dialled = addr
		return client, nil
	})
	c, err := dial(context.Background(), "tm-2:6121")
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, "tm-2:6121", dialled)
	require.NoError(t, server.SetReadDeadline(time.Now().Add(5*time.Second)))
	job, err := fdpass.ReadPreamble(server)
	require.NoError(t, err)
	require.Equal(t, "job-7", job)

	dialErr := errors.New("refused")
	_, err = fdpass.Dialer("job-7", func(context.Context, string) (net.Conn, error) { return nil, dialErr })(context.Background(), "x:1")
	require.ErrorIs(t, err, dialErr)

	_, err = fdpass.Dialer("", nil)(context.Background(), "127.0.0.1:1")
	require.ErrorIs(t, err, fdpass.ErrBadPreamble, "a bad job id fails before dialling")
}

// A context cancelled while dialling with the default dialer gives the
// context's error, not a hang.
func TestDialerCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := fdpass.Dialer("job", nil)(ctx, "127.0.0.1:1")
	require.ErrorIs(t, err, context.Canceled)
}

// Dialer's connection is closed when the preamble cannot be written.
func TestDialerClosesOnWriteFailure(t *testing.T) {
	a, b := net.Pipe()
	require.NoError(t, b.Close()) // writes to a now fail
	_, err := fdpass.Dialer("job", func(context.Context, string) (net.Conn, error) { return a, nil })(context.Background(), "x:1")
	require.ErrorIs(t, err, io.ErrClosedPipe)
	_, err = a.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.ErrClosedPipe, "the failed conn was closed")
}
