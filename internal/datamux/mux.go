package datamux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/strom-dev/strom/internal/fdpass"
)

// Magics of the headers (see the package doc).
const (
	SessionMagic = "STRMMUX1"
	RefuseMagic  = "STRMMUXR" // the acceptor's answer when it wins a dial race
	OpenMagic    = "STRMOPN1"
)

// maxAddrLen bounds an address in a header.
const maxAddrLen = 1024

// retireCheck is how often a replaced session is checked for streams; it
// is closed when idle at two checks in a row, so that a peer that has not
// yet switched to the newer one has time to.
var retireCheck = 250 * time.Millisecond

// errRefused: the peer was dialling this side at the same time and its
// session wins.
var errRefused = errors.New("the peer dials this side at the same time, and its session wins")

// Config configures a Mux.
type Config struct {
	// Address is this TaskManager's advertised data address: its name in
	// peers' session tables, and what placements call it. Required.
	Address string
	// Hand hands a connection for job to the job's worker
	// (jobworker.Launcher.HandConn): the local end of an arriving stream,
	// or a direct connection from a peer in direct mode. It must close c.
	// Required.
	Hand func(job string, c net.Conn) error
	// Dial dials a peer's data port (default: a net.Dialer over TCP).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// HandshakeTimeout bounds reading a header (default 10 s): a stranger
	// that connects and says nothing must not hold the TaskManager.
	HandshakeTimeout time.Duration
	// Yamux overrides the sessions' settings (default: yamux's, with
	// logging to Logger).
	Yamux  *yamux.Config
	Logger *slog.Logger
}

// Mux owns a TaskManager's sessions to its peers. It is safe for
// concurrent use.
type Mux struct {
	cfg Config
	log *slog.Logger
	ymx *yamux.Config

	mu      sync.Mutex
	peers   map[string]*session // the session new streams to a peer use
	all     map[*session]struct{}
	dialing map[string]*dialCall // dials in flight, and sessions being accepted
	changed chan struct{}        // closed and replaced when a session registers
	closed  bool
	ctx     context.Context // cancelled by Close: ends dials and retirements
	cancel  context.CancelFunc

	wg sync.WaitGroup
}

// session is one yamux session to a peer.
type session struct {
	peer   string // the peer's advertised data address
	dialer string // the advertised address of the side that dialled it
	ys     *yamux.Session
}

type dialCall struct {
	accepting bool // a session from the peer being accepted, not a dial
	done      chan struct{}
	s         *session
	err       error
}

// New returns a Mux; Serve and ServeWorkers put it to work.
func New(cfg Config) (*Mux, error) {
	if cfg.Address == "" {
		return nil, errors.New("datamux: no advertised data address")
	}
	if cfg.Hand == nil {
		return nil, errors.New("datamux: no Hand function")
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Mux{
		cfg: cfg, log: cfg.Logger.With("data_address", cfg.Address),
		peers: map[string]*session{}, all: map[*session]struct{}{}, dialing: map[string]*dialCall{},
		changed: make(chan struct{}),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if cfg.Yamux != nil {
		c := *cfg.Yamux
		m.ymx = &c
	} else {
		m.ymx = yamux.DefaultConfig()
		m.ymx.LogOutput = nil
		m.ymx.Logger = slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)
		// A half-closed stream whose peer never closes its side is
		// reset after this (yamux's default is 5 minutes).
		m.ymx.StreamCloseTimeout = 30 * time.Second
	}
	if err := yamux.VerifyConfig(m.ymx); err != nil {
		return nil, fmt.Errorf("datamux: %w", err)
	}
	return m, nil
}

// Sessions is the number of live sessions (TCP connections) to peers,
// counting one that lost a dial race until it is closed.
func (m *Mux) Sessions() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.all)
}

// Close closes every session, which ends their streams, and waits for the
// Mux's goroutines. Close the listeners given to Serve and ServeWorkers
// first (or concurrently): Close does not wait for those loops' callers.
func (m *Mux) Close() error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		m.cancel()
	}
	ss := make([]*session, 0, len(m.all))
	for s := range m.all {
		ss = append(ss, s)
	}
	m.mu.Unlock()
	for _, s := range ss {
		_ = s.ys.Close()
	}
	m.wg.Wait()
	return nil
}

// go runs f as one of the Mux's goroutines, unless it is closed.
func (m *Mux) goTracked(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
	return true
}

// Serve accepts connections on the data port l until l is closed.
func (m *Mux) Serve(l net.Listener) { m.acceptLoop(l, "data port", m.accepted) }

// ServeWorkers serves the workers' stream requests on the unix listener l
// until l is closed.
func (m *Mux) ServeWorkers(l net.Listener) { m.acceptLoop(l, "worker socket", m.outbound) }

func (m *Mux) acceptLoop(l net.Listener, what string, serve func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				m.log.Error("datamux: stopped accepting", "listener", what, "error", err)
			}
			return
		}
		if !m.goTracked(func() { serve(c) }) {
			_ = c.Close()
		}
	}
}

// accepted reads the header of a connection to the data port.
func (m *Mux) accepted(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(m.cfg.HandshakeTimeout))
	magic, err := fdpass.ReadMagic(c)
	var value string
	if err == nil {
		switch magic {
		case fdpass.Magic:
			value, err = fdpass.ReadValue(c, "job id", fdpass.MaxJobIDLen)
		case SessionMagic:
			value, err = fdpass.ReadValue(c, "address", maxAddrLen)
		default:
			err = fmt.Errorf("%w: magic %q: not a Strom data connection, or another version", fdpass.ErrBadPreamble, magic)
		}
	}
	if err != nil {
		m.log.Warn("datamux: refused a data connection", "remote", c.RemoteAddr().String(), "error", err)
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	if magic == fdpass.Magic {
		if err := m.cfg.Hand(value, c); err != nil {
			m.log.Warn("datamux: direct data connection not handed over", "job_id", value, "error", err)
		}
		return
	}
	m.acceptSession(c, value)
}

// acceptSession answers a peer's session header: it accepts the session,
// or refuses it when this side's own dial to the peer is in flight (or
// just done) and wins the race, being the smaller address. The peer
// then waits for this side's session instead, so a race ends with one
// connection before any stream is opened on the other.
func (m *Mux) acceptSession(c net.Conn, peer string) {
	m.mu.Lock()
	own := m.dialing[peer] != nil && !m.dialing[peer].accepting
	cur := m.peers[peer]
	m.mu.Unlock()
	if !own && cur != nil && cur.dialer == m.cfg.Address && m.alive(cur) {
		// A live session this side dialled, and a dial from the peer:
		// the peer dialled before it accepted this side's (a race). Had
		// the peer lost the session, the ping would have failed.
		own = true
	}
	refuse := own && m.cfg.Address < peer
	var d *dialCall
	m.mu.Lock()
	if !own && m.dialing[peer] == nil {
		// Local Opens wait for this session rather than dial one.
		d = &dialCall{accepting: true, done: make(chan struct{})}
		m.dialing[peer] = d
	}
	m.mu.Unlock()
	if d != nil {
		defer func() {
			m.mu.Lock()
			if m.dialing[peer] == d {
				delete(m.dialing, peer)
			}
			m.mu.Unlock()
			close(d.done)
		}()
	}
	reply := SessionMagic
	if refuse {
		reply = RefuseMagic
	}
	_ = c.SetWriteDeadline(time.Now().Add(m.cfg.HandshakeTimeout))
	if err := fdpass.WriteHeader(c, reply, "address", m.cfg.Address, maxAddrLen); err != nil || refuse {
		if err != nil {
			m.log.Warn("datamux: session from a peer failed in its handshake", "peer", peer, "error", err)
		} else {
			m.log.Debug("datamux: refused a session from a peer dialling at the same time: it uses this side's", "peer", peer)
		}
		_ = c.Close()
		return
	}
	_ = c.SetWriteDeadline(time.Time{})
	ys, err := yamux.Server(c, m.ymx)
	if err != nil {
		_ = c.Close()
		m.log.Warn("datamux: session from a peer", "peer", peer, "error", err)
		return
	}
	m.register(&session{peer: peer, dialer: peer, ys: ys})
}

// pingTimeout bounds the ping that checks a session is alive on the
// peer's side too (yamux's own bound is ConnectionWriteTimeout, 10 s).
var pingTimeout = time.Second

// alive says whether s answers a ping within pingTimeout; one that does
// not is closed.
func (m *Mux) alive(s *session) bool {
	if s.ys.IsClosed() {
		return false
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.ys.Ping()
		done <- err
	}()
	t := time.NewTimer(pingTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err == nil {
			return true
		}
	case <-t.C:
	}
	_ = s.ys.Close()
	return false
}

// Open returns a new stream to the peer TaskManager at addr (its
// advertised data address), dialling a session first if there is none.
// The caller writes the job preamble first.
func (m *Mux) Open(ctx context.Context, addr string) (net.Conn, error) {
	var lastErr error
	// A session may die between the lookup and the open (a peer that
	// restarted, a race the other side resolved): one more try dials.
	for range 2 {
		s, err := m.session(ctx, addr)
		if err != nil {
			return nil, err
		}
		st, err := s.ys.OpenStream()
		if err == nil {
			return st, nil
		}
		lastErr = err
		m.drop(s)
		_ = s.ys.Close()
	}
	return nil, fmt.Errorf("datamux: opening a stream to %s: %w", addr, lastErr)
}

// session returns the session to addr, dialling it if need be; concurrent
// callers share one dial.
func (m *Mux) session(ctx context.Context, addr string) (*session, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, errors.New("datamux: closed")
		}
		if s := m.peers[addr]; s != nil && !s.ys.IsClosed() {
			m.mu.Unlock()
			return s, nil
		}
		d := m.dialing[addr]
		if d == nil {
			d = &dialCall{done: make(chan struct{})}
			m.dialing[addr] = d
			m.mu.Unlock()
			m.dialFor(ctx, addr, d)
			if errors.Is(d.err, errRefused) {
				return m.awaitPeer(ctx, addr)
			}
			return d.s, d.err
		}
		m.mu.Unlock()
		select {
		case <-d.done:
			if errors.Is(d.err, errRefused) {
				return m.awaitPeer(ctx, addr)
			}
			if d.err != nil {
				return nil, d.err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// awaitPeer waits for the session the peer at addr dials (after it
// refused this side's).
func (m *Mux) awaitPeer(ctx context.Context, addr string) (*session, error) {
	timeout := time.NewTimer(m.cfg.HandshakeTimeout)
	defer timeout.Stop()
	for {
		m.mu.Lock()
		s, changed := m.peers[addr], m.changed
		m.mu.Unlock()
		if s != nil && !s.ys.IsClosed() {
			return s, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-m.ctx.Done():
			return nil, errors.New("datamux: closed")
		case <-timeout.C:
			return nil, fmt.Errorf("datamux: %s refused this side's session and dialled none within %v", addr, m.cfg.HandshakeTimeout)
		}
	}
}

// dialFor runs the dial d stands for and registers its session.
func (m *Mux) dialFor(ctx context.Context, addr string, d *dialCall) {
	d.s, d.err = m.dial(ctx, addr)
	m.mu.Lock()
	delete(m.dialing, addr)
	m.mu.Unlock()
	if d.err == nil {
		m.register(d.s)
	}
	close(d.done)
}

// dial makes a session to addr: TCP, the header exchange, yamux.
func (m *Mux) dial(ctx context.Context, addr string) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.HandshakeTimeout)
	defer cancel()
	c, err := m.cfg.Dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("datamux: dialling %s: %w", addr, err)
	}
	dl, _ := ctx.Deadline()
	_ = c.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	err = fdpass.WriteHeader(c, SessionMagic, "address", m.cfg.Address, maxAddrLen)
	var peer, magic string
	if err == nil {
		magic, err = fdpass.ReadMagic(c)
	}
	if err == nil {
		switch magic {
		case SessionMagic, RefuseMagic:
			peer, err = fdpass.ReadValue(c, "address", maxAddrLen)
		default:
			err = fmt.Errorf("%w: magic %q, want %q (a peer in direct mode, or another version)", fdpass.ErrBadPreamble, magic, SessionMagic)
		}
	}
	if err == nil && magic == RefuseMagic {
		err = errRefused
	}
	stop()
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("datamux: session handshake with %s: %w", addr, err)
	}
	_ = c.SetDeadline(time.Time{})
	if peer != addr {
		// Placements name it addr; its own idea may differ (a wildcard
		// bind): the table keys by what this side dials.
		m.log.Debug("datamux: peer advertises another address", "dialled", addr, "advertised", peer)
	}
	ys, err := yamux.Client(c, m.ymx)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("datamux: session with %s: %w", addr, err)
	}
	return &session{peer: addr, dialer: m.cfg.Address, ys: ys}, nil
}

// readAddrHeader reads a header of the given magic carrying an address.
func readAddrHeader(r io.Reader, want, hint string) (string, error) {
	magic, err := fdpass.ReadMagic(r)
	if err != nil {
		return "", err
	}
	if magic != want {
		return "", fmt.Errorf("%w: magic %q, want %q (%s)", fdpass.ErrBadPreamble, magic, want, hint)
	}
	return fdpass.ReadValue(r, "address", maxAddrLen)
}

// register adds a new session, settles a dial race, and serves the
// streams the peer opens on it.
func (m *Mux) register(s *session) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = s.ys.Close()
		return
	}
	m.all[s] = struct{}{}
	var retired *session
	cur := m.peers[s.peer]
	// A race is settled in the handshake (acceptSession); a second
	// session here replaces one the peer has lost (it dialled again)
	// or this side abandoned: the newer serves new streams, the older
	// is closed once unused.
	if cur != nil && !cur.ys.IsClosed() {
		retired = cur
	}
	m.peers[s.peer] = s
	close(m.changed)
	m.changed = make(chan struct{})
	m.wg.Add(1)
	if retired != nil {
		m.wg.Add(1)
	}
	n := len(m.all)
	m.mu.Unlock()
	m.log.Info("datamux: session up", "peer", s.peer, "dialler", s.dialer, "sessions", n)
	go func() {
		defer m.wg.Done()
		m.acceptStreams(s)
	}()
	if retired != nil {
		m.log.Info("datamux: a newer session with a peer: closing the older once unused", "peer", s.peer, "older_dialled_by", retired.dialer)
		go func() {
			defer m.wg.Done()
			m.retire(retired)
		}()
	}
}

// drop forgets a session that failed or was closed.
func (m *Mux) drop(s *session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.all, s)
	if m.peers[s.peer] == s {
		delete(m.peers, s.peer)
	}
}

// retire closes a replaced session once it carries no stream (or when
// it fails, or the Mux closes).
func (m *Mux) retire(s *session) {
	t := time.NewTicker(retireCheck)
	defer t.Stop()
	idle := 0
	for {
		select {
		case <-t.C:
			if s.ys.NumStreams() > 0 {
				idle = 0
				continue
			}
			if idle++; idle < 2 {
				continue
			}
			_ = s.ys.Close()
			return
		case <-s.ys.CloseChan():
			return
		case <-m.ctx.Done():
			return
		}
	}
}

// acceptStreams serves the streams the peer opens on s until s ends.
func (m *Mux) acceptStreams(s *session) {
	defer func() {
		m.drop(s)
		_ = s.ys.Close()
		m.mu.Lock()
		n := len(m.all)
		m.mu.Unlock()
		m.log.Info("datamux: session down", "peer", s.peer, "dialler", s.dialer, "sessions", n)
	}()
	for {
		st, err := s.ys.AcceptStream()
		if err != nil {
			return
		}
		if !m.goTracked(func() { m.inbound(s, st) }) {
			_ = st.Close()
			return
		}
	}
}

// inbound hands a stream from a peer to the worker of the job its
// preamble names, through a socket pair, and relays.
func (m *Mux) inbound(s *session, st *yamux.Stream) {
	_ = st.SetReadDeadline(time.Now().Add(m.cfg.HandshakeTimeout))
	job, err := fdpass.ReadPreamble(st)
	if err != nil {
		m.log.Warn("datamux: refused a stream", "peer", s.peer, "error", err)
		_ = st.Close()
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	local, remote, err := fdpass.SocketPair()
	if err != nil {
		m.log.Warn("datamux: stream not handed over", "peer", s.peer, "job_id", job, "error", err)
		_ = st.Close()
		return
	}
	// The worker's log names the peer TaskManager, as for a direct
	// connection.
	if err := m.cfg.Hand(job, namedConn{remote, fdpass.Addr(s.peer)}); err != nil {
		m.log.Warn("datamux: stream not handed over", "peer", s.peer, "job_id", job, "error", err)
		_ = local.Close()
		_ = st.Close()
		return
	}
	relay(local, st)
}

// namedConn is a socket pair's end that reports the peer TaskManager as
// its remote address. Embedding keeps its SyscallConn, which
// fdpass.Sender.Send needs.
type namedConn struct {
	*net.UnixConn
	remote net.Addr
}

func (c namedConn) RemoteAddr() net.Addr { return c.remote }

// outbound opens the stream a worker asks for and relays.
func (m *Mux) outbound(c net.Conn) {
	if _, ok := c.(halfCloser); !ok {
		m.log.Error("datamux: a worker's connection cannot half-close: not a unix socket", "type", fmt.Sprintf("%T", c))
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(m.cfg.HandshakeTimeout))
	addr, err := readAddrHeader(c, OpenMagic, "not a worker of this version")
	if err != nil {
		m.log.Warn("datamux: refused a worker's request", "error", err)
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.HandshakeTimeout)
	st, err := m.Open(ctx, addr)
	cancel()
	if err != nil {
		m.log.Warn("datamux: no stream for a worker", "peer", addr, "error", err)
		_ = c.Close()
		return
	}
	relay(c.(halfCloser), st.(*yamux.Stream))
}

// WorkerDialer returns the dial function of a job worker's tcp.Endpoint in
// multiplexed mode: it asks the TaskManager listening on the unix socket
// at path for a stream to the peer at addr and writes the preamble naming
// jobID, which the peer's TaskManager reads to pick the worker.
func WorkerDialer(path, jobID string) func(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return fdpass.Dialer(jobID, func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return nil, fmt.Errorf("datamux: asking the TaskManager (%s) for a stream to %s: %w", path, addr, err)
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetWriteDeadline(dl)
		}
		if err := fdpass.WriteHeader(c, OpenMagic, "address", addr, maxAddrLen); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("datamux: asking the TaskManager for a stream to %s: %w", addr, err)
		}
		_ = c.SetWriteDeadline(time.Time{})
		return c, nil
	})
}
