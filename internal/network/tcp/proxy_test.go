package tcp_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/codec"
)

var (
	codecInt64 = codec.Of[int64]()
	intCodec   = codec.Of[int]()
)

// failingCodec encodes like codecInt64 and refuses to decode anything.
type failingCodec struct{}

func (failingCodec) Append(dst []byte, v int64) []byte { return codecInt64.Append(dst, v) }
func (failingCodec) Decode([]byte) (int64, int, error) {
	return 0, 0, errors.Join(codec.ErrCorrupt, errors.New("refused by the test"))
}

// proxy forwards TCP connections to a target until killed: a network
// between two processes that the test can cut.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(p.kill)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = a.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, a, b)
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(a, b); _ = a.Close() })
		p.wg.Go(func() { _, _ = io.Copy(b, a); _ = b.Close() })
	}
}

// kill cuts every connection and stops the proxy.
func (p *proxy) kill() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// errInjected is the failure a cutConn injects.
var errInjected = errors.New("injected: connection cut")

// cutConn reads at most limit bytes, then fails: a connection that breaks
// in the middle of a frame.
type cutConn struct {
	net.Conn
	mu    sync.Mutex
	limit int
}

func (c *cutConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit <= 0 {
		return 0, errInjected
	}
	if len(p) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.Conn.Read(p)
	c.limit -= n
	return n, err
}

// frozenConn never returns from Read until closed: a peer process that
// stopped (SIGSTOP) with its socket open.
type frozenConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func freeze(nc net.Conn) *frozenConn { return &frozenConn{Conn: nc, closed: make(chan struct{})} }

func (c *frozenConn) Read([]byte) (int, error) {
	<-c.closed
	return 0, net.ErrClosed
}

func (c *frozenConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// thawing reads normally until frozen is set (after the handshake and
// the request), then like a frozen process.
type thawing struct {
	net.Conn
	frozen *atomic.Bool
	f      *frozenConn
}

func (c *thawing) Read(p []byte) (int, error) {
	if c.frozen.Load() {
		return c.f.Read(p)
	}
	return c.Conn.Read(p)
}

func (c *thawing) Close() error {
	_ = c.f.Close()
	return nil
}
