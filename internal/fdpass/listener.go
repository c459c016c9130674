package fdpass

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
)

// ErrParentGone is returned by Accept when the TaskManager's end of the
// pair is closed: the TaskManager exited, crashed or dropped this worker.
// Nobody can reach the worker any more; it should exit.
var ErrParentGone = errors.New("fdpass: the TaskManager closed its end of the socket (parent gone)")

// Listener is the worker's end of the pair, as a net.Listener whose Accept
// returns the connections the TaskManager hands over. It owns the socket:
// Hello writes through it, and Close closes it.
type Listener struct {
	uc   *net.UnixConn
	addr Addr

	closeOnce sync.Once
	closed    chan struct{} // closed by Close
	goneOnce  sync.Once
	gone      chan struct{} // closed when the parent's end is seen closed

	// Accept's state, under mu: bytes read but not yet framed, and the
	// descriptors received but not yet matched to their 'C' frame.
	mu  sync.Mutex
	buf []byte
	fds []int
}

// Listen wraps the worker's end of the pair (in a worker started with
// ExtraFiles = []*os.File{child}, that is os.NewFile(3, ...)). It takes
// ownership of f and closes it. addr is what Addr reports: the
// TaskManager's advertised data-plane address, where peers reach the
// worker.
func Listen(f *os.File, addr string) (*Listener, error) {
	nc, err := net.FileConn(f)
	_ = f.Close() // FileConn made its own copy
	if err != nil {
		return nil, fmt.Errorf("fdpass: wrapping worker end: %w", err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		_ = nc.Close()
		return nil, fmt.Errorf("fdpass: worker end is a %T, not a unix socket", nc)
	}
	return &Listener{uc: uc, addr: Addr(addr), closed: make(chan struct{}), gone: make(chan struct{})}, nil
}

// Hello sends the one hello message to the TaskManager (by convention the
// worker's RPC address), which waits for it in Sender.ReadHello before it
// hands over connections.
func (l *Listener) Hello(s string) error { return WriteHello(l.uc, s) }

// Addr is the address given to Listen.
func (l *Listener) Addr() net.Addr { return l.addr }

// Gone is closed when Accept has seen the TaskManager's end closed (the
// same moment Accept returns ErrParentGone). A worker whose accept loop
// lives inside another component (tcp.Endpoint logs and stops on an
// Accept error) watches this to exit.
func (l *Listener) Gone() <-chan struct{} { return l.gone }

// Accept waits for the next connection the TaskManager hands over. Its
// RemoteAddr is the dialler's, as the TaskManager saw it. After Close it
// returns an error wrapping net.ErrClosed; once the TaskManager's end is
// closed, ErrParentGone.
func (l *Listener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if l.isClosed() {
			l.dropFDs()
			return nil, fmt.Errorf("fdpass: accept: %w", net.ErrClosed)
		}
		c, ok, err := l.nextConn()
		if err != nil || ok {
			return c, err
		}
		if err := l.readMore(); err != nil {
			if l.isClosed() {
				l.dropFDs()
				return nil, fmt.Errorf("fdpass: accept: %w", net.ErrClosed)
			}
			return nil, err
		}
	}
}

// nextConn takes one whole frame off buf, if there is one. A frame other
// than 'C', or a 'C' without its descriptor, means the socket is not
// speaking this protocol: an error, as nothing after it can be trusted.
func (l *Listener) nextConn() (c net.Conn, ok bool, err error) {
	if len(l.buf) < headerLen {
		return nil, false, nil
	}
	n := int(binary.BigEndian.Uint16(l.buf[1:]))
	if n > maxPayload {
		return nil, false, fmt.Errorf("fdpass: accept: frame of %d bytes, at most %d", n, maxPayload)
	}
	if len(l.buf) < headerLen+n {
		return nil, false, nil
	}
	kind, remote := l.buf[0], string(l.buf[headerLen:headerLen+n])
	l.buf = l.buf[:copy(l.buf, l.buf[headerLen+n:])]
	if kind != kindConn {
		return nil, false, fmt.Errorf("fdpass: accept: unexpected message kind %q from the TaskManager", kind)
	}
	if len(l.fds) == 0 {
		return nil, false, errors.New("fdpass: accept: connection message without a file descriptor")
	}
	fd := l.fds[0]
	l.fds = l.fds[1:]
	f := os.NewFile(uintptr(fd), "fdpass-conn")
	nc, err := net.FileConn(f)
	_ = f.Close() // FileConn dup'ed it
	if err != nil {
		// One connection that cannot be wrapped (out of descriptors, say)
		// is dropped, not returned as an Accept error: a tcp.Endpoint
		// stops accepting for good on one. Its dialler sees it closed
		// and dials again.
		slog.Warn("fdpass: dropping a handed-over connection", "remote", remote, "err", err)
		return l.nextConn()
	}
	if nc.RemoteAddr() == nil {
		// getpeername failed (the peer already reset?): keep the address
		// the TaskManager saw, so logs still say who it was.
		return remoteConn{nc, Addr(remote)}, true, nil
	}
	return nc, true, nil
}

// readMore reads what the socket has, queueing the descriptors that came
// with it. The kernel stops a read after a message that carried
// descriptors, so one read brings at most a few and oob is ample.
func (l *Listener) readMore() error {
	var b [512]byte
	oob := make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, flags, _, err := l.uc.ReadMsgUnix(b[:], oob)
	n, oobn = max(n, 0), max(oobn, 0) // a failed read may report -1
	if oobn > 0 {
		// Queue descriptors even if the read failed: they are ours now
		// and must be closed, not leaked.
		if perr := l.queueFDs(oob[:oobn]); perr != nil && err == nil {
			err = perr
		}
	}
	l.buf = append(l.buf, b[:n]...)
	if err == nil && flags&syscall.MSG_CTRUNC != 0 {
		err = errors.New("fdpass: accept: control message truncated, descriptors lost")
	}
	// End of stream is the parent's end closing; so is a reset, which a
	// unix socket reports when its peer closed with data still unread
	// (a TaskManager that died before reading the hello).
	if (err == nil && n == 0) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		l.goneOnce.Do(func() { close(l.gone) })
		return ErrParentGone
	}
	if err != nil {
		return fmt.Errorf("fdpass: accept: reading from the TaskManager: %w", err)
	}
	return nil
}

func (l *Listener) queueFDs(oob []byte) error {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("fdpass: accept: parsing control message: %w", err)
	}
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue // not SCM_RIGHTS (credentials, say): nothing to keep
		}
		l.fds = append(l.fds, fds...)
	}
	return nil
}

// dropFDs closes descriptors received but never accepted. Under mu.
func (l *Listener) dropFDs() {
	for _, fd := range l.fds {
		_ = syscall.Close(fd)
	}
	l.fds = nil
}

func (l *Listener) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// Close closes the worker's end: a blocked Accept returns net.ErrClosed,
// the TaskManager's next Send fails, and descriptors received but not yet
// accepted are closed. Connections already accepted are the caller's.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closed)
		err = l.uc.Close()
		// The read under a blocked Accept fails at once now, so mu is
		// free soon.
		l.mu.Lock()
		l.dropFDs()
		l.mu.Unlock()
	})
	if err != nil {
		return fmt.Errorf("fdpass: closing worker end: %w", err)
	}
	return nil
}

// Addr is a net.Addr that is just a string: the TaskManager's advertised
// data address for the Listener, the dialler's address for a connection
// whose socket no longer knows its peer.
type Addr string

// Network reports "tcp": what the Listener stands in for.
func (a Addr) Network() string { return "tcp" }

func (a Addr) String() string { return string(a) }

// remoteConn overrides RemoteAddr of a handed-over connection.
type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }
