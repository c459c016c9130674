package fdpass

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Message kinds on the unix socket.
const (
	kindHello = 'H' // child → parent: the worker's RPC address, once
	kindConn  = 'C' // parent → child: one connection, its fd in SCM_RIGHTS
)

// headerLen is a frame's header: the kind byte and a big-endian uint16
// payload length.
const headerLen = 3

// maxPayload bounds a frame's payload: a hello or a remote address is a
// host:port, so anything near this is a bug or a stranger on the socket.
const maxPayload = 4096

// DefaultSendTimeout bounds one Send: a worker that is alive but does not
// read its socket must not block the TaskManager's accept loop for ever.
const DefaultSendTimeout = 10 * time.Second

// appendFrame appends one frame to b.
func appendFrame(b []byte, kind byte, payload string) ([]byte, error) {
	if len(payload) > maxPayload {
		return b, fmt.Errorf("fdpass: payload of %d bytes, at most %d", len(payload), maxPayload)
	}
	b = append(b, kind)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	return append(b, payload...), nil
}

// WriteHello writes the hello frame to w, the child's end of the pair (an
// *os.File from fd 3, or the conn under a Listener). Prefer Listener.Hello,
// which writes through the one object that owns the child's end.
func WriteHello(w io.Writer, s string) error {
	b, err := appendFrame(nil, kindHello, s)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("fdpass: writing hello: %w", err)
	}
	return nil
}

// Pair creates the unix stream socket pair between a TaskManager (parent)
// and a job worker (child). Pass child to the worker in exec.Cmd.ExtraFiles
// and close it in the parent after cmd.Start, so that the parent's Sender
// is the only end left when the worker dies (and Send then fails). Both
// ends are close-on-exec: ExtraFiles clears the flag on the child's copy
// only, so no other process started meanwhile inherits either end.
func Pair() (parent *Sender, child *os.File, err error) {
	fds, err := socketpair()
	if err != nil {
		return nil, nil, fmt.Errorf("fdpass: socketpair: %w", os.NewSyscallError("socketpair", err))
	}
	pf := os.NewFile(uintptr(fds[0]), "fdpass-parent")
	child = os.NewFile(uintptr(fds[1]), "fdpass-child")
	// FileConn dups the descriptor (keeping close-on-exec); the original
	// is not needed any more.
	nc, err := net.FileConn(pf)
	_ = pf.Close()
	if err != nil {
		_ = child.Close()
		return nil, nil, fmt.Errorf("fdpass: wrapping parent end: %w", err)
	}
	return &Sender{uc: nc.(*net.UnixConn), sendTimeout: DefaultSendTimeout}, child, nil
}

// Sender is the TaskManager's end of the pair: it reads the worker's hello
// and hands it connections. It is safe for concurrent use; frames of
// concurrent Sends never interleave.
type Sender struct {
	uc          *net.UnixConn
	sendTimeout time.Duration

	wmu    sync.Mutex // serialises writes, so frames stay whole
	broken error      // under wmu: the first failed write; the stream may hold half a frame
	rmu    sync.Mutex // serialises ReadHello
}

// SetSendTimeout changes how long one Send may wait for the worker to take
// a connection off the socket (default DefaultSendTimeout; <= 0: no limit).
// Set it before the first Send.
func (s *Sender) SetSendTimeout(d time.Duration) { s.sendTimeout = d }

// ReadHello waits up to timeout for the worker's hello and returns its
// payload (by convention the worker's RPC address). A worker that exits
// before saying hello gives an error wrapping io.ErrUnexpectedEOF; one
// that says something else is a protocol error.
func (s *Sender) ReadHello(timeout time.Duration) (string, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if timeout > 0 {
		if err := s.uc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return "", fmt.Errorf("fdpass: reading hello: %w", err)
		}
		defer func() { _ = s.uc.SetReadDeadline(time.Time{}) }()
	}
	var h [headerLen]byte
	if _, err := io.ReadFull(s.uc, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", fmt.Errorf("fdpass: reading hello: the worker closed its end or was silent: %w", err)
	}
	if h[0] != kindHello {
		return "", fmt.Errorf("fdpass: reading hello: got message kind %q, want %q", h[0], kindHello)
	}
	n := binary.BigEndian.Uint16(h[1:])
	if n > maxPayload {
		return "", fmt.Errorf("fdpass: reading hello: payload of %d bytes, at most %d", n, maxPayload)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(s.uc, p); err != nil {
		return "", fmt.Errorf("fdpass: reading hello payload: %w", err)
	}
	return string(p), nil
}

// Send hands c to the worker and closes the parent's copy of it, whether
// or not the handoff worked: either the worker owns the socket now or the
// connection is dropped (its dialler sees it closed and retries), never
// left half-owned. c must implement syscall.Conn (*net.TCPConn does); it
// must not have been read past its preamble through any buffer, since the
// worker reads the socket afresh. Send fails, without blocking, when the
// worker is gone (its end is closed), and after the send timeout when the
// worker lives but does not read. A failed write leaves the Sender broken
// (the socket may hold half a frame): every later Send fails too, and the
// TaskManager should treat the worker as lost.
func (s *Sender) Send(c net.Conn) error {
	defer c.Close()
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("fdpass: cannot pass a %T: it has no file descriptor (syscall.Conn)", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("fdpass: file descriptor of %v: %w", c.RemoteAddr(), err)
	}
	remote := ""
	if a := c.RemoteAddr(); a != nil {
		remote = a.String()
	}
	frame, err := appendFrame(nil, kindConn, remote)
	if err != nil {
		return err
	}

	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.broken != nil {
		return fmt.Errorf("fdpass: not handing connection from %s: an earlier handoff failed: %w", remote, s.broken)
	}
	if s.sendTimeout > 0 {
		if err := s.uc.SetWriteDeadline(time.Now().Add(s.sendTimeout)); err != nil {
			return fmt.Errorf("fdpass: sending connection from %s: %w", remote, err)
		}
	}
	var werr error
	// Control keeps c's descriptor from being closed under us while the
	// kernel takes its reference to it in sendmsg.
	cerr := rc.Control(func(fd uintptr) {
		var n int
		n, _, werr = s.uc.WriteMsgUnix(frame, syscall.UnixRights(int(fd)), nil)
		if werr == nil && n < len(frame) {
			// A stream socket may take part of a message when its buffer
			// is nearly full; the descriptor went with the first byte, the
			// rest of the frame follows without it.
			_, werr = s.uc.Write(frame[n:])
		}
	})
	if cerr != nil {
		return fmt.Errorf("fdpass: file descriptor of connection from %s: %w", remote, cerr)
	}
	if werr != nil {
		// Part of the frame may be on the socket: nothing sent after it
		// could be framed right, so the Sender is done.
		s.broken = werr
		return fmt.Errorf("fdpass: handing connection from %s to the worker: %w", remote, werr)
	}
	return nil
}

// Close closes the parent's end. The worker's Accept then fails with
// ErrParentGone, which is how a worker learns that its TaskManager is
// gone. Connections sent but not yet accepted stay with the worker.
func (s *Sender) Close() error {
	if err := s.uc.Close(); err != nil {
		return fmt.Errorf("fdpass: closing parent end: %w", err)
	}
	return nil
}
