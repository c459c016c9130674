package fdpass_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/fdpass"
)

// pair makes a Sender and the worker's Listener over it, in one process,
// with the hello exchanged as a worker would before connections flow.
func pair(t *testing.T, addr, hello string) (*fdpass.Sender, *fdpass.Listener) {
	t.Helper()
	s, child, err := fdpass.Pair()
	require.NoError(t, err)
	l, err := fdpass.Listen(child, addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(); _ = l.Close() })
	require.NoError(t, l.Hello(hello))
	got, err := s.ReadHello(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, hello, got)
	return s, l
}

// The handed-over connection is the client's socket itself: its remote
// address is the client's, and its stream starts right after the
// preamble even when the client sent preamble and data in one segment.
func TestHandoffIsTheSocketItself(t *testing.T) {
	s, l := pair(t, "10.0.0.7:6121", "127.0.0.1:9999")
	require.Equal(t, "10.0.0.7:6121", l.Addr().String())
	require.Equal(t, "tcp", l.Addr().Network())
	tm := startTaskManager(t, map[string]*fdpass.Sender{"job-a": s})

	client, err := net.Dial("tcp", tm.addr())
	require.NoError(t, err)
	defer client.Close()
	var b bytes.Buffer
	require.NoError(t, fdpass.WritePreamble(&b, "job-a"))
	b.WriteString("hello worker")
	_, err = client.Write(b.Bytes()) // one write: preamble and data together
	require.NoError(t, err)

	c, err := l.Accept()
	require.NoError(t, err)
	defer c.Close()
	_, isTCP := c.(*net.TCPConn)
	require.True(t, isTCP, "a handed-over conn is a *net.TCPConn, got %T", c)
	require.Equal(t, client.LocalAddr().String(), c.RemoteAddr().String())
	require.Equal(t, client.RemoteAddr().String(), c.LocalAddr().String())
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	got := make([]byte, len("hello worker"))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, "hello worker", string(got), "the worker's stream must start right after the preamble")

	_, err = c.Write([]byte("hello client"))
	require.NoError(t, err)
	require.NoError(t, client.SetDeadline(time.Now().Add(5*time.Second)))
	got = make([]byte, len("hello client"))
	_, err = io.ReadFull(client, got)
	require.NoError(t, err)
	require.Equal(t, "hello client", string(got))

	// The TaskManager kept no copy: when the worker closes, the client
	// sees the end of the stream.
	require.NoError(t, c.Close())
	n, err := client.Read(got)
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)
}

// Many clients at once, for two jobs: each connection reaches its own
// job's worker, whole, and the replies come back on the right socket.
func TestManyConnectionsRoutedByJob(t *testing.T) {
	sa, la := pair(t, "tm:1", "a")
	sb, lb := pair(t, "tm:1", "b")
	tm := startTaskManager(t, map[string]*fdpass.Sender{"job-a": sa, "job-b": sb})
	var served sync.WaitGroup
	served.Add(2)
	go func() { defer served.Done(); _ = upperEcho(la, "A") }()
	go func() { defer served.Done(); _ = upperEcho(lb, "B") }()

	const n = 40
	var wg sync.WaitGroup
	replies := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := []string{"job-a", "job-b"}[i%2]
			replies[i], errs[i] = exchange(tm.addr(), job, fmt.Sprintf("client %d", i))
		}()
	}
	wg.Wait()
	for i, r := range replies {
		require.NoError(t, errs[i], "client %d", i)
		require.Equal(t, fmt.Sprintf("%s:CLIENT %d", []string{"A", "B"}[i%2], i), r)
	}
	require.Empty(t, tm.errors())

	require.NoError(t, la.Close())
	require.NoError(t, lb.Close())
	served.Wait()
}

// Close unblocks a waiting Accept with net.ErrClosed, later Accepts fail
// the same way, and the TaskManager's next Send fails instead of handing a
// socket to nobody.
func TestListenerClose(t *testing.T) {
	s, l := pair(t, "tm:1", "w")
	accepted := acceptAsync(l)
	time.Sleep(20 * time.Millisecond) // let Accept block (the test holds either way)
	require.NoError(t, l.Close())
	require.ErrorIs(t, awaitAccept(t, accepted), net.ErrClosed)
	_, err := l.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
	require.NoError(t, l.Close(), "a second Close is harmless")
	select {
	case <-l.Gone():
		t.Fatal("a Listener closed by its owner must not report the parent gone")
	default:
	}

	client, server := tcpPair(t)
	defer client.Close()
	err = s.Send(server)
	require.Error(t, err)
	// Send closed the parent's copy either way: the client sees the end.
	requireEOF(t, client)
}

// A connection sent but never accepted is closed with the Listener, not
// leaked in the worker: its client sees the end of the stream.
func TestCloseDropsUnacceptedConnections(t *testing.T) {
	s, l := pair(t, "tm:1", "w")
	client, server := tcpPair(t)
	defer client.Close()
	require.NoError(t, s.Send(server))
	require.NoError(t, l.Close())
	requireEOF(t, client)
}

// When the TaskManager's end closes, a blocked Accept returns
// ErrParentGone and Gone is closed: the worker knows to exit.
func TestParentGone(t *testing.T) {
	s, l := pair(t, "tm:1", "w")
	accepted := acceptAsync(l)
	require.NoError(t, s.Close())
	require.ErrorIs(t, awaitAccept(t, accepted), fdpass.ErrParentGone)
	select {
	case <-l.Gone():
	default:
		t.Fatal("Gone not closed after Accept returned ErrParentGone")
	}
	_, err := l.Accept()
	require.ErrorIs(t, err, fdpass.ErrParentGone, "and it stays gone")
}

// Connections already on the socket when the parent dies are still
// accepted, in order; only then does Accept report the parent gone.
func TestParentGoneAfterPendingConnections(t *testing.T) {
	s, l := pair(t, "tm:1", "w")
	var clients []net.Conn
	for range 3 {
		client, server := tcpPair(t)
		defer client.Close()
		clients = append(clients, client)
		require.NoError(t, s.Send(server))
	}
	require.NoError(t, s.Close())
	for i, client := range clients {
		c, err := l.Accept()
		require.NoError(t, err, "connection %d", i)
		require.Equal(t, client.LocalAddr().String(), c.RemoteAddr().String(), "connections arrive in the order sent")
		require.NoError(t, c.Close())
	}
	_, err := l.Accept()
	require.ErrorIs(t, err, fdpass.ErrParentGone)
}

func TestReadHelloErrors(t *testing.T) {
	t.Run("silent worker times out", func(t *testing.T) {
		s, child, err := fdpass.Pair()
		require.NoError(t, err)
		defer s.Close()
		defer child.Close()
		start := time.Now()
		_, err = s.ReadHello(50 * time.Millisecond)
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("worker exits before hello", func(t *testing.T) {
		s, child, err := fdpass.Pair()
		require.NoError(t, err)
		defer s.Close()
		require.NoError(t, child.Close())
		_, err = s.ReadHello(5 * time.Second)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})
	t.Run("hello written on the raw file", func(t *testing.T) {
		s, child, err := fdpass.Pair()
		require.NoError(t, err)
		defer s.Close()
		defer child.Close()
		require.NoError(t, fdpass.WriteHello(child, "rpc://x:1"))
		got, err := s.ReadHello(5 * time.Second)
		require.NoError(t, err)
		require.Equal(t, "rpc://x:1", got)
	})
	t.Run("not a hello", func(t *testing.T) {
		s, child, err := fdpass.Pair()
		require.NoError(t, err)
		defer s.Close()
		defer child.Close()
		_, err = child.Write([]byte("XYZ"))
		require.NoError(t, err)
		_, err = s.ReadHello(5 * time.Second)
		require.ErrorContains(t, err, "message kind")
	})
}

// A conn without a file descriptor cannot be passed: a clear error, and
// the conn is closed all the same.
func TestSendNeedsADescriptor(t *testing.T) {
	s, _ := pair(t, "tm:1", "w")
	a, b := net.Pipe()
	defer a.Close()
	err := s.Send(b)
	require.ErrorContains(t, err, "no file descriptor")
	_, err = b.Write([]byte("x"))
	require.ErrorIs(t, err, io.ErrClosedPipe, "Send closes the conn it was given")
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server, err = ln.Accept()
	require.NoError(t, err)
	return client, server
}

func requireEOF(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, err := c.Read(make([]byte, 1))
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF, "the other end must be closed everywhere")
}

// acceptAsync runs one Accept on its own goroutine; awaitAccept waits
// for its error, failing the test if Accept stays blocked.
func acceptAsync(l net.Listener) <-chan error {
	ch := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if c != nil {
			_ = c.Close()
		}
		ch <- err
	}()
	return ch
}

func awaitAccept(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Accept stayed blocked")
		return nil
	}
}

// A descriptor the worker cannot turn into a connection (here a pipe,
// not a socket) is dropped, and Accept goes on to the next connection
// rather than failing: an Accept error would stop a tcp.Endpoint for good.
func TestAcceptSkipsUnusableDescriptor(t *testing.T) {
	s, l := pair(t, "tm:1", "w")
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	a, b := net.Pipe()
	defer b.Close()
	require.NoError(t, s.Send(pipeConn{Conn: a, f: r}))

	client, server := tcpPair(t)
	defer client.Close()
	require.NoError(t, s.Send(server))
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	select {
	case c := <-accepted:
		require.NotNil(t, c, "Accept failed instead of skipping the pipe")
		defer c.Close()
		require.Equal(t, client.LocalAddr().String(), c.RemoteAddr().String())
	case <-time.After(5 * time.Second):
		t.Fatal("Accept stayed blocked")
	}
}

// pipeConn is a net.Conn whose descriptor is f's, for handing the worker
// something that is not a socket.
type pipeConn struct {
	net.Conn
	f *os.File
}

func (p pipeConn) SyscallConn() (syscall.RawConn, error) { return p.f.SyscallConn() }
