package tcp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strom-dev/strom/internal/network"
)

// Errors a channel's OnError may be called with (wrapped, with the peer
// and the reason). A task that gets one fails; its restart strategy takes
// over.
var (
	// ErrConnectionLost: the connection carrying the channel broke (the
	// peer process died, the network failed).
	ErrConnectionLost = errors.New("tcp: data connection lost")
	// ErrPeerClosed: the other end released or failed the channel before
	// it ended (its task was cancelled or failed).
	ErrPeerClosed = errors.New("tcp: channel closed by the remote end")
	// ErrProtocol: the peer sent something this version cannot read.
	ErrProtocol = errors.New("tcp: protocol violation")
	// ErrClosed: the endpoint was closed.
	ErrClosed = errors.New("tcp: endpoint closed")
)

// Config configures an Endpoint.
type Config struct {
	// Addr is the address to listen on. Empty means "127.0.0.1:0":
	// loopback and a free port, so a process opens its data plane to
	// other machines only when its configuration says so.
	Addr string
	// AdvertisedHost, if set, is the host Addr gives peers instead of the
	// listener's (needed when Addr binds a wildcard such as 0.0.0.0, which
	// peers cannot dial).
	AdvertisedHost string
	// DialTimeout bounds dialling a peer and its handshake (default 10 s).
	DialTimeout time.Duration
	// WriteTimeout bounds one write of frames (default 60 s; < 0: none).
	// A peer's endpoint always reads (what it receives is bounded by the
	// credits), so a write that does not finish means the peer process
	// stopped (SIGSTOP, a machine that froze): the connection fails
	// instead of blocking its channels' goroutines for ever. Heartbeats
	// usually notice first.
	WriteTimeout time.Duration
	// Logger receives connection failures (default slog.Default()).
	Logger *slog.Logger
	// Listener, if set, is listened on instead of Addr, and Dial, if set,
	// dials peers instead of a net.Dialer: the seams for TLS and for
	// tests that inject faults into connections. The endpoint closes the
	// listener and the connections.
	Listener net.Listener
	Dial     func(ctx context.Context, addr string) (net.Conn, error)
}

// ChannelOptions configure one channel. Both ends of a channel must use
// the same Buffers (the consumer announces its own, and the producer
// refuses a mismatch).
type ChannelOptions struct {
	// Buffers are the channel's credits (default
	// network.DefaultBuffersPerChannel), BatchSize the records per batch
	// (default network.DefaultBatchSize).
	Buffers, BatchSize int
	// Overdraft: buffers beyond the credits a producer may take in the
	// middle of a batch. 0 means network.DefaultOverdraftBuffers, < 0
	// none.
	Overdraft int
	// OnError is called at most once, from a network goroutine, when the
	// channel fails before it ended (its end of partition sent, on the
	// producer's side, or received, on the consumer's): its connection is
	// lost (ErrConnectionLost), the other end closed it (ErrPeerClosed),
	// a record could not be encoded or decoded, or the endpoint closed
	// (ErrClosed). It is not called for a local Release. It must not block: it should fail the
	// task (mail it a failure), which then ends through its context.
	OnError func(error)
}

func (o ChannelOptions) withDefaults() ChannelOptions {
	if o.Buffers <= 0 {
		o.Buffers = network.DefaultBuffersPerChannel
	}
	if o.BatchSize <= 0 {
		o.BatchSize = network.DefaultBatchSize
	}
	switch {
	case o.Overdraft == 0:
		o.Overdraft = network.DefaultOverdraftBuffers
	case o.Overdraft < 0:
		o.Overdraft = 0
	}
	return o
}

// Endpoint is one process's end of the data plane: it listens for the
// connections of consumers in other processes, dials the processes whose
// producers its consumers read, and keeps one connection per peer for all
// channels. See the package doc for the protocol.
type Endpoint struct {
	cfg Config
	log *slog.Logger
	ln  net.Listener
	wg  sync.WaitGroup
	// sent and received count the bytes of frames over all connections
	// (Stats).
	sent, received atomic.Int64

	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{}
	// dialled are the connections this endpoint dialled, by peer
	// address; dialing the dials in progress.
	dialled map[string]*conn
	dialing map[string]*dialCall
	outputs map[network.ChannelKey]outChan
	inputs  map[network.ChannelKey]inChan
	// pending are channels a consumer requested before the producer's
	// Output: bound when it comes.
	pending map[network.ChannelKey]pendingOpen
}

type dialCall struct {
	done chan struct{}
	c    *conn
	err  error
}

type pendingOpen struct {
	c       *conn
	id      uint64
	buffers int
}

// Listen starts an endpoint listening on cfg.Addr.
func Listen(cfg Config) (*Endpoint, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("data plane: listening on %s: %w", cfg.Addr, err)
		}
	}
	e := &Endpoint{
		cfg: cfg, log: cfg.Logger.With("component", "network/tcp", "addr", ln.Addr().String()), ln: ln,
		conns:   map[*conn]struct{}{},
		dialled: map[string]*conn{},
		dialing: map[string]*dialCall{},
		outputs: map[network.ChannelKey]outChan{},
		inputs:  map[network.ChannelKey]inChan{},
		pending: map[network.ChannelKey]pendingOpen{},
	}
	e.wg.Add(1)
	go e.acceptLoop()
	return e, nil
}

// Addr is the address peers dial: the listener's, with the port chosen,
// and Config.AdvertisedHost as the host if set.
func (e *Endpoint) Addr() string {
	a := e.ln.Addr().String()
	if e.cfg.AdvertisedHost == "" {
		return a
	}
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return a
	}
	return net.JoinHostPort(e.cfg.AdvertisedHost, port)
}

func (e *Endpoint) acceptLoop() {
	defer e.wg.Done()
	for {
		nc, err := e.ln.Accept()
		if err != nil {
			e.mu.Lock()
			closed := e.closed
			e.mu.Unlock()
			if !closed {
				e.log.Error("data plane stopped accepting connections", "err", err)
			}
			return
		}
		c := newConn(e, nc, nc.RemoteAddr().String(), false)
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			_ = nc.Close()
			return
		}
		e.conns[c] = struct{}{}
		e.wg.Add(2)
		e.mu.Unlock()
		c.start(true)
	}
}

// conn returns the connection to the endpoint at addr, dialling it if
// there is none: one per peer, shared by all channels from it.
func (e *Endpoint) conn(ctx context.Context, addr string) (*conn, error) {
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return nil, ErrClosed
		}
		if c := e.dialled[addr]; c != nil {
			e.mu.Unlock()
			return c, nil
		}
		if d := e.dialing[addr]; d != nil {
			e.mu.Unlock()
			select {
			case <-d.done:
				if d.err != nil {
					return nil, d.err
				}
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		d := &dialCall{done: make(chan struct{})}
		e.dialing[addr] = d
		e.mu.Unlock()
		c, err := e.dial(ctx, addr)
		e.mu.Lock()
		delete(e.dialing, addr)
		switch {
		case err != nil:
		case e.closed:
			err = ErrClosed
			_ = c.nc.Close()
		default:
			e.dialled[addr] = c
			e.conns[c] = struct{}{}
			e.wg.Add(2)
			c.start(false)
		}
		e.mu.Unlock()
		d.c, d.err = c, err
		close(d.done)
		return c, err
	}
}

func (e *Endpoint) dial(ctx context.Context, addr string) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	dial := e.cfg.Dial
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	nc, err := dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: dialling %s: %w", ErrConnectionLost, addr, err)
	}
	deadline, _ := ctx.Deadline()
	br := bufio.NewReaderSize(nc, 64<<10)
	if err := exchangeHello(nc, br, deadline); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("data connection to %s: %w", addr, err)
	}
	c := newConn(e, nc, addr, true)
	c.br = br // it may hold bytes read past the hello
	return c, nil
}

// forget drops a failed connection.
func (e *Endpoint) forget(c *conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.conns, c)
	if e.dialled[c.peer] == c {
		delete(e.dialled, c.peer)
	}
	for k, p := range e.pending {
		if p.c == c {
			delete(e.pending, k)
		}
	}
}

// open handles a consumer's request for channel k under id on c.
func (e *Endpoint) open(c *conn, id uint64, k network.ChannelKey, buffers int) error {
	e.mu.Lock()
	c.mu.Lock()
	if c.failed != nil {
		c.mu.Unlock()
		e.mu.Unlock()
		return nil
	}
	if _, dup := c.outKeys[id]; dup {
		c.mu.Unlock()
		e.mu.Unlock()
		return fmt.Errorf("%w: channel id %d opened twice", ErrProtocol, id)
	}
	c.outKeys[id] = k
	c.outs[id] = nil
	c.mu.Unlock()
	var after func()
	_, pending := e.pending[k]
	o, ok := e.outputs[k]
	switch {
	case e.closed:
	case pending || ok && o.isBound():
		c.closeChannel(id, fmt.Sprintf("channel %v requested twice", k))
	case ok:
		after = e.bindLocked(o, c, id, buffers)
	default:
		e.pending[k] = pendingOpen{c: c, id: id, buffers: buffers}
	}
	e.mu.Unlock()
	if after != nil {
		after()
	}
	return nil
}

// bindLocked binds output o to the request (c, id), or refuses it (under
// e.mu). What it returns, if not nil, the caller runs once it has let go
// of e.mu: it stops o, and the owner's OnError may call the endpoint.
func (e *Endpoint) bindLocked(o outChan, c *conn, id uint64, buffers int) (after func()) {
	if buffers != o.buffers() {
		reason := fmt.Sprintf("channel %v: consumer has %d buffers, producer %d (the two processes disagree on the job's configuration)", o.key(), buffers, o.buffers())
		c.closeChannel(id, reason)
		delete(e.outputs, o.key())
		return func() { o.stop(fmt.Errorf("%w: %s", ErrProtocol, reason), true) }
	}
	c.mu.Lock()
	if c.failed != nil {
		err := c.failed
		c.mu.Unlock()
		delete(e.outputs, o.key())
		return func() { o.stop(err, true) }
	}
	if _, ok := c.outKeys[id]; !ok {
		c.mu.Unlock()
		return nil // closed by the peer meanwhile
	}
	c.outs[id] = o
	c.mu.Unlock()
	o.bind(c, id)
	return nil
}

func (e *Endpoint) dropInput(in inChan) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.inputs[in.key()] == in {
		delete(e.inputs, in.key())
	}
}

func (e *Endpoint) dropOutput(o outChan) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.outputs[o.key()] == o {
		delete(e.outputs, o.key())
	}
}

func (e *Endpoint) dropPending(k network.ChannelKey, c *conn, id uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p, ok := e.pending[k]; ok && p.c == c && p.id == id {
		delete(e.pending, k)
	}
}

// Release closes the channels (both directions) whose keys match: the
// channels of a finished or cancelled attempt. Their frames still in
// flight are dropped, the other end is told, and their goroutines end.
// The owners' OnError is not called.
func (e *Endpoint) Release(match func(network.ChannelKey) bool) {
	e.mu.Lock()
	var outs []outChan
	var ins []inChan
	var pend []pendingOpen
	for k, o := range e.outputs {
		if match(k) {
			outs = append(outs, o)
			delete(e.outputs, k)
		}
	}
	for k, in := range e.inputs {
		if match(k) {
			ins = append(ins, in)
			delete(e.inputs, k)
		}
	}
	for k, p := range e.pending {
		if match(k) {
			pend = append(pend, p)
			delete(e.pending, k)
		}
	}
	e.mu.Unlock()
	for _, o := range outs {
		o.stop(nil, false) // closes its connection binding, if any
	}
	for _, in := range ins {
		in.stop(nil, false)
	}
	for _, p := range pend {
		p.c.closeChannel(p.id, "")
	}
}

// ReleaseAttempt releases every channel of one attempt of a job (see
// network.Registry.ReleaseAttempt).
func (e *Endpoint) ReleaseAttempt(job string, attempt int) {
	e.Release(func(k network.ChannelKey) bool { return k.Job == job && k.Attempt == attempt })
}

// ReleaseEdges releases the channels of some edges of one attempt of a
// job: a region restarted alone (see network.Registry.ReleaseVertices).
func (e *Endpoint) ReleaseEdges(job string, attempt int, edges []int) {
	e.Release(func(k network.ChannelKey) bool {
		return k.Job == job && k.Attempt == attempt && slices.Contains(edges, k.Edge)
	})
}

// ReleaseJob releases every channel of a job.
func (e *Endpoint) ReleaseJob(job string) {
	e.Release(func(k network.ChannelKey) bool { return k.Job == job })
}

// Len is the number of open channels, both directions, and of channels
// requested by consumers that have no producer yet (tests check that
// releases leave nothing behind).
func (e *Endpoint) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.outputs) + len(e.inputs) + len(e.pending)
}

// Stats are an endpoint's totals since Listen.
type Stats struct {
	// BytesSent and BytesReceived are the frames' bytes over every
	// connection (data and control; the hellos aside): Flink's
	// numBytesOut and numBytesIn of the whole process.
	BytesSent, BytesReceived int64
}

// Stats returns the endpoint's totals (any goroutine).
func (e *Endpoint) Stats() Stats {
	return Stats{BytesSent: e.sent.Load(), BytesReceived: e.received.Load()}
}

// Conns is the number of live connections, accepted and dialled.
func (e *Endpoint) Conns() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.conns)
}

// Close stops the endpoint: the listener, every connection and every
// channel (their OnError hears ErrClosed). It waits for its goroutines.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	conns := make([]*conn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	outs := make([]outChan, 0, len(e.outputs))
	for _, o := range e.outputs {
		outs = append(outs, o)
	}
	ins := make([]inChan, 0, len(e.inputs))
	for _, in := range e.inputs {
		ins = append(ins, in)
	}
	clear(e.outputs)
	clear(e.inputs)
	clear(e.pending)
	e.mu.Unlock()
	err := e.ln.Close()
	for _, c := range conns {
		c.fail(ErrClosed)
	}
	for _, o := range outs {
		o.stop(ErrClosed, !o.ended())
	}
	for _, in := range ins {
		in.stop(ErrClosed, !in.ended())
	}
	e.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("data plane: closing listener: %w", err)
	}
	return nil
}
