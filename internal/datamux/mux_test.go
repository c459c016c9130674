package datamux

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/fdpass"
)

// handed is a connection a node handed to a "worker": the test.
type handed struct {
	job string
	c   net.Conn
}

// node is a TaskManager's Mux with its data port and worker socket.
type node struct {
	m      *Mux
	addr   string
	sock   string
	handed chan handed
	mu     sync.Mutex
	tcp    []net.Conn // every TCP connection it dialled or accepted
}

func (n *node) track(c net.Conn) net.Conn {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tcp = append(n.tcp, c)
	return c
}

// kill resets every TCP connection of the node, as the kernel does for a
// process killed by SIGKILL.
func (n *node) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.tcp {
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	}
}

type trackingListener struct {
	net.Listener
	n *node
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.track(c)
	}
	return c, err
}

// newNode starts a node; dial, if set, wraps its TCP dial (before the
// header exchange).
func newNode(t testing.TB, dial func(ctx context.Context, addr string) (net.Conn, error)) *node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	n := &node{addr: ln.Addr().String(), sock: filepath.Join(t.TempDir(), "data.sock"), handed: make(chan handed, 256)}
	wl, err := net.Listen("unix", n.sock)
	require.NoError(t, err)
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	n.m, err = New(Config{
		Address: n.addr,
		Hand: func(job string, c net.Conn) error {
			n.handed <- handed{job, c}
			return nil
		},
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := dial(ctx, addr)
			if err == nil {
				n.track(c)
			}
			return c, err
		},
		Logger: testLogger,
	})
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.m.Serve(trackingListener{ln, n}) }()
	go func() { defer wg.Done(); n.m.ServeWorkers(wl) }()
	t.Cleanup(func() {
		_ = ln.Close()
		_ = wl.Close()
		require.NoError(t, n.m.Close())
		wg.Wait()
		for {
			select {
			case h := <-n.handed:
				_ = h.c.Close()
			default:
				return
			}
		}
	})
	return n
}

// dial opens a stream from a worker of job on n to the peer at addr, as a
// worker's endpoint does.
func (n *node) dial(t testing.TB, job, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := WorkerDialer(n.sock, job)(ctx, addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// next is the next connection handed to n's workers.
func (n *node) next(t testing.TB) handed {
	t.Helper()
	select {
	case h := <-n.handed:
		t.Cleanup(func() { _ = h.c.Close() })
		return h
	case <-time.After(5 * time.Second):
		t.Fatal("no connection handed over after 5s")
		return handed{}
	}
}

// sendAndExpect writes msg on c and checks that n hands a connection of
// job over that carries it.
func sendAndExpect(t *testing.T, c net.Conn, n *node, job, msg string) handed {
	t.Helper()
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	h := n.next(t)
	require.Equal(t, job, h.job)
	buf := make([]byte, len(msg))
	_, err = io.ReadFull(h.c, buf)
	require.NoError(t, err)
	require.Equal(t, msg, string(buf))
	return h
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not so after 5s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readEnd reads c until it ends and returns how it ended, failing the
// test if that takes more than 3 s.
func readEnd(t *testing.T, c net.Conn) error {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := io.Copy(io.Discard, c)
	require.NotErrorIs(t, err, os.ErrDeadlineExceeded, "the connection did not end within 3s")
	if err == nil {
		return io.EOF
	}
	return err
}

func TestStreamsBothWaysOverOneSessionWithHalfCloses(t *testing.T) {
	a, b := newNode(t, nil), newNode(t, nil)

	// a's worker of job-1 to b: bytes both ways, then half-closes.
	c := a.dial(t, "job-1", b.addr)
	_, err := c.Write([]byte("hello b"))
	require.NoError(t, err)
	require.NoError(t, c.(*net.UnixConn).CloseWrite())
	h := b.next(t)
	require.Equal(t, "job-1", h.job)
	require.Equal(t, a.addr, h.c.RemoteAddr().String(), "the worker sees the peer TaskManager")
	got, err := io.ReadAll(h.c)
	require.NoError(t, err, "b's worker reads the bytes, then EOF from a's half-close")
	require.Equal(t, "hello b", string(got))
	_, err = h.c.Write([]byte("hello a, after your EOF"))
	require.NoError(t, err)
	require.NoError(t, h.c.Close())
	got, err = io.ReadAll(c)
	require.NoError(t, err)
	require.Equal(t, "hello a, after your EOF", string(got))

	// b's worker of job-2 to a: the same session, opened the other way.
	c2 := b.dial(t, "job-2", a.addr)
	_, err = c2.Write([]byte("to a"))
	require.NoError(t, err)
	h2 := a.next(t)
	require.Equal(t, "job-2", h2.job)
	buf := make([]byte, 4)
	_, err = io.ReadFull(h2.c, buf)
	require.NoError(t, err)
	require.Equal(t, "to a", string(buf))

	// A worker that exits: its peer reads the end at once.
	require.NoError(t, h2.c.Close())
	require.Equal(t, io.EOF, readEnd(t, c2))

	require.Equal(t, 1, a.m.Sessions())
	require.Equal(t, 1, b.m.Sessions())
	a.mu.Lock()
	require.Len(t, a.tcp, 1, "a made one TCP connection to b, and accepted none")
	a.mu.Unlock()
}

func TestManyConcurrentStreamsShareOneSession(t *testing.T) {
	a, b := newNode(t, nil), newNode(t, nil)
	const streams, size = 40, 200 << 10
	// b's workers echo.
	go func() {
		for range streams {
			h, ok := <-b.handed
			if !ok {
				return
			}
			go func() {
				defer h.c.Close()
				_, _ = io.Copy(h.c, h.c)
			}()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := WorkerDialer(a.sock, fmt.Sprint("job-", i%3))(ctx, b.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			want := make([]byte, size)
			_, _ = rand.Read(want)
			go func() {
				_, _ = c.Write(want)
				_ = c.(*net.UnixConn).CloseWrite()
			}()
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
				return
			}
			if !bytes.Equal(got, want) {
				errs <- fmt.Errorf("stream %d: echoed %d bytes, not the %d sent", i, len(got), len(want))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Equal(t, 1, a.m.Sessions())
	require.Equal(t, 1, b.m.Sessions())
}

func TestSimultaneousDialsEndWithOneSession(t *testing.T) {
	// Both nodes dial each other at once: each dial waits at a barrier
	// until the other has started, so each side sees the peer's session
	// header while its own dial is in flight.
	var barrier sync.WaitGroup
	barrier.Add(2)
	var d net.Dialer
	var dials atomic.Int32
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		if dials.Add(1) <= 2 {
			barrier.Done()
			barrier.Wait()
		}
		return d.DialContext(ctx, "tcp", addr)
	}
	a, b := newNode(t, dial), newNode(t, dial)
	var wg sync.WaitGroup
	var ca, cb net.Conn
	wg.Add(2)
	go func() { defer wg.Done(); ca = a.dial(t, "job", b.addr) }()
	go func() { defer wg.Done(); cb = b.dial(t, "job", a.addr) }()
	wg.Wait()
	ha, hb := a.next(t), b.next(t)
	require.EqualValues(t, 2, dials.Load(), "each side dialled")
	// Both streams work, whichever session carries them.
	for _, p := range [][2]net.Conn{{ca, hb.c}, {cb, ha.c}} {
		_, err := p[0].Write([]byte("x"))
		require.NoError(t, err)
		buf := make([]byte, 1)
		_, err = io.ReadFull(p[1], buf)
		require.NoError(t, err)
	}
	// The race was settled in the handshake: the larger address's
	// session was refused before it carried a stream, and both streams
	// went over the smaller address's.
	require.Equal(t, 1, a.m.Sessions())
	require.Equal(t, 1, b.m.Sessions())
	a.m.mu.Lock()
	sa := a.m.peers[b.addr]
	a.m.mu.Unlock()
	b.m.mu.Lock()
	sb := b.m.peers[a.addr]
	b.m.mu.Unlock()
	require.Equal(t, min(a.addr, b.addr), sa.dialer)
	require.Equal(t, min(a.addr, b.addr), sb.dialer)
	c := a.dial(t, "job", b.addr)
	_, err := c.Write([]byte("y"))
	require.NoError(t, err)
	buf := make([]byte, 1)
	_, err = io.ReadFull(b.next(t).c, buf)
	require.NoError(t, err)
	require.EqualValues(t, 2, dials.Load(), "no new dial")
	require.Equal(t, 1, a.m.Sessions())
}

func TestPeerKilledMidStreamFailsItsStreamsAtOnce(t *testing.T) {
	a, b := newNode(t, nil), newNode(t, nil)
	out := a.dial(t, "job-1", b.addr) // a's worker writes
	in := b.dial(t, "job-2", a.addr)  // b's worker writes to a
	hb, ha := b.next(t), a.next(t)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a's worker keeps writing
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := out.Write(make([]byte, 4096)); err != nil {
				return
			}
		}
	}()
	_, err := io.ReadFull(hb.c, make([]byte, 64<<10))
	require.NoError(t, err, "data flows before the kill")
	_, err = in.Write([]byte("z"))
	require.NoError(t, err)
	_, err = io.ReadFull(ha.c, make([]byte, 1))
	require.NoError(t, err)

	start := time.Now()
	b.kill()
	// a's workers, on both streams, see them end within the test's 3 s
	// (readEnd), not after a keepalive or write timeout.
	readEnd(t, out)
	readEnd(t, ha.c)
	t.Logf("streams ended %v after the kill", time.Since(start))
	waitFor(t, "a dropped the session", func() bool { return a.m.Sessions() == 0 })

	// The next stream dials again.
	sendAndExpect(t, a.dial(t, "job-1", b.addr), b, "job-1", "again")
	require.Equal(t, 1, a.m.Sessions())
}

func TestBlockedStreamDoesNotBlockAnother(t *testing.T) {
	a, b := newNode(t, nil), newNode(t, nil)
	slow := a.dial(t, "slow-job", b.addr)
	hs := b.next(t) // never read until the end
	const total = 16 << 20
	var written atomic.Int64
	wrote := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for written.Load() < total {
			n, err := slow.Write(buf)
			written.Add(int64(n))
			if err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	// The slow stream fills its window and the buffers on its way, and
	// its writer blocks.
	waitFor(t, "the slow writer blocked", func() bool {
		w := written.Load()
		time.Sleep(100 * time.Millisecond)
		return w > 0 && written.Load() == w
	})
	require.Less(t, written.Load(), int64(total), "the slow writer blocked before the end")

	// Another job's stream on the same session moves 8 MiB meanwhile.
	fast := a.dial(t, "fast-job", b.addr)
	hf := b.next(t)
	require.Equal(t, "fast-job", hf.job)
	const fastTotal = 8 << 20
	go func() {
		_, _ = fast.Write(make([]byte, fastTotal))
		_ = fast.(*net.UnixConn).CloseWrite()
	}()
	_ = hf.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, hf.c)
	require.NoError(t, err)
	require.EqualValues(t, fastTotal, n)
	select {
	case err := <-wrote:
		t.Fatalf("the slow writer finished (%v) without a reader", err)
	default:
	}
	require.Equal(t, 1, a.m.Sessions())

	// Once read, the slow stream completes.
	_ = hs.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err = io.CopyN(io.Discard, hs.c, total)
	require.NoError(t, err)
	require.EqualValues(t, total, n)
	require.NoError(t, <-wrote)
}

func TestDirectConnectionsAreStillHandedOver(t *testing.T) {
	b := newNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := fdpass.Dialer("job-d", nil)(ctx, b.addr)
	require.NoError(t, err)
	defer c.Close()
	sendAndExpect(t, c, b, "job-d", "direct")
	require.Equal(t, 0, b.m.Sessions())
}

func TestStrangersAreRefused(t *testing.T) {
	b := newNode(t, nil)
	c, err := net.Dial("tcp", b.addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	require.NoError(t, err)
	readEnd(t, c)
	// A request for a peer that does not answer fails the worker's dial
	// handshake: the connection ends.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := dead.Addr().String()
	require.NoError(t, dead.Close())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The TaskManager closes the request at once: the dialler fails in
	// its preamble's write, or the endpoint in its handshake's read.
	if w, err := WorkerDialer(b.sock, "job")(ctx, addr); err == nil {
		readEnd(t, w)
		_ = w.Close()
	}
	require.Equal(t, 0, b.m.Sessions())
}

var testLogger = slog.New(slog.DiscardHandler)

// blackhole is a TCP proxy whose far side can be cut while its near side
// stays open and silent: a connection one end has lost and the other has
// not noticed (a half-open connection).
type blackhole struct {
	mu   sync.Mutex
	far  []net.Conn
	near []net.Conn
}

func (p *blackhole) dial(t testing.TB) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		far, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		near, mine := net.Pipe()
		p.mu.Lock()
		p.far, p.near = append(p.far, far), append(p.near, near, mine)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(far, mine) }()
		go func() { _, _ = io.Copy(mine, far) }()
		t.Cleanup(func() { _ = near.Close(); _ = mine.Close(); _ = far.Close() })
		return near, nil
	}
}

// cut closes the far side only: the peer sees its connection end, the
// dialler sees nothing.
func (p *blackhole) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.far {
		_ = c.Close()
	}
}

// A peer that lost its session (half-open on this side) dials again: the
// ping finds this side's session dead, so the peer's is accepted, not
// refused, though this side dialled the old one.
func TestPeerThatLostTheSessionIsAcceptedAgain(t *testing.T) {
	var p blackhole
	old := pingTimeout
	pingTimeout = 300 * time.Millisecond
	defer func() { pingTimeout = old }()
	a, b := newNode(t, p.dial(t)), newNode(t, p.dial(t))
	if b.addr < a.addr {
		// a, the smaller address, would refuse b's session if it
		// believed its own alive.
		a, b = b, a
	}
	sendAndExpect(t, a.dial(t, "job", b.addr), b, "job", "first")
	require.Equal(t, 1, a.m.Sessions())
	p.cut()
	waitFor(t, "b dropped the session", func() bool { return b.m.Sessions() == 0 })
	require.Equal(t, 1, a.m.Sessions(), "a has not noticed")
	sendAndExpect(t, b.dial(t, "job", a.addr), a, "job", "second")
	waitFor(t, "one session each", func() bool { return a.m.Sessions() == 1 && b.m.Sessions() == 1 })
}
