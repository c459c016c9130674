package rpc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/strom-dev/strom/internal/rpc/rpcpb"
	"github.com/strom-dev/strom/internal/rpc/rpcpb/rpcpbconnect"
)

// Network is the transport between processes: the roles' messages in
// their protobuf form (wire.go) over connect RPC on HTTP/2 without TLS
// (h2c), on plain net/http.
//
// One process has one Network: one HTTP server that serves every
// endpoint the process listens on, and one HTTP/2 client to the others.
// An address is "host:port/name": the process's server, then the
// endpoint's name ("resourcemanager", "dispatcher", "jobmaster/<job id>",
// "taskmanager/<id>"). A bare name (no host:port before its first slash)
// is an endpoint of this process, for Listen and for gateways alike, so
// roles that name each other as they do over Local work unchanged in one
// process; across processes they must use the full addresses
// (Endpoint.Address). The sender's spelling of an address is what it is
// known by: its queue, its order and its Unreachable events.
//
// Sending. A gateway's send puts the message on the queue of its
// destination address and returns at once, so no role's loop waits for
// the network (the gateways' contract). Each destination has one goroutine
// that drains its queue, oldest first, in batches, onto one long-lived
// bidirectional stream to the endpoint (EndpointService.Deliver), so
// messages from this process to one endpoint arrive in the order sent.
// The receiving server puts each batch into the endpoint's mailbox, in
// order, and acknowledges it on the same stream.
//
// Losing a destination. The stream stays open while the destination
// lives, even idle, so that its loss is seen at once, not at the next
// send: when the remote process dies its kernel closes the connection and
// the stream breaks; when the endpoint closes, its server says so on the
// stream. Then, and when the destination cannot be reached at all
// (connection refused, no such endpoint), the transport calls
// NetworkOptions.OnUnreachable once with the address and the error, and
// drops what was queued for it: every message sent is either delivered or
// counted in exactly one Unreachable (Unsent: never written to the
// network; Unacked: written, fate unknown — the receiver may have it),
// unless the transport is closed first or the message is larger than
// MaxMessageBytes (dropped alone, with an error logged). Delivered means
// in the endpoint's mailbox: closing an endpoint drops what it has not
// received, as with Local. A later send to the same address
// starts afresh: a new stream, a new attempt, reported again if it fails.
// The sender cannot get these errors from the send itself, which returned
// long before; a send fails synchronously only for an empty address or a
// closed transport, with ErrUnreachable as Local does.
//
// Like Local's mailboxes, the queues are unbounded: their growth is
// bounded by the protocol (a few messages per execution, one metrics
// report per interval), and a message must not be changed after it is
// sent (it is encoded later, by the destination's goroutine). Unlike
// Local, every message is encoded, also to an endpoint of the same
// process, so Failure.Cause never arrives (only the failure's data does).
type Network struct {
	opts   NetworkOptions
	log    *slog.Logger
	srv    *http.Server
	client *http.Client
	host   string // host:port in this process's addresses

	ctx    context.Context // canceled by Close: ends every peer's stream
	cancel context.CancelFunc
	serve  chan struct{} // closed when the server's Serve returned

	// id names this Network (this process's transport) to receivers, and
	// streams numbers its streams, so a receiver can fence a stream that a
	// newer one from the same sender replaced (see fence).
	id      string
	streams atomic.Uint64

	mu        sync.Mutex
	closed    bool
	fences    map[string]*fence   // by sender id + endpoint name
	endpoints map[string]*mailbox // by name
	peers     map[string]*peer    // by destination address
	peerWG    sync.WaitGroup      // the peers' goroutines
	handlerWG sync.WaitGroup      // the server's Deliver handlers
}

// NetworkOptions configure a Network; the zero value listens on an
// ephemeral port of loopback.
type NetworkOptions struct {
	// Bind is the host:port the server listens on. Default 127.0.0.1:0:
	// only this machine can reach it unless a bind address is given (a
	// cluster that runs uploaded binaries must not be open by accident).
	Bind string
	// Advertise is the host:port other processes reach this one at, the
	// first part of its endpoints' addresses. Default: the address the
	// listener got (give it when binding 0.0.0.0 or behind NAT).
	Advertise string
	// OnUnreachable is told when messages to an address can no longer be
	// delivered (see Network). It runs on the destination's goroutine:
	// it must return quickly (hand the event to a role's loop), and must
	// not call Close. It is not called once Close has begun.
	OnUnreachable func(Unreachable)
	// DialTimeout bounds connecting to another process. Default 5s.
	DialTimeout time.Duration
	// Dial opens the connections to other processes. Default: a
	// net.Dialer with DialTimeout. Tests give one that can cut
	// connections; TLS will be added here.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// MaxBatchBytes is the encoded size up to which queued messages are
	// sent together in one request. Default 1 MiB.
	MaxBatchBytes int
	// MaxMessageBytes is the largest request the server accepts, so a
	// bogus client cannot make it allocate without bound; a message larger
	// than this is dropped by its sender with an error logged (it could
	// never be delivered). The processes of a cluster should agree on it.
	// Default 256 MiB.
	MaxMessageBytes int
	// Handlers are served on the same listener beside the RPC service,
	// by path pattern (http.ServeMux): the JobManager's blob server for
	// job binaries is one, so a TaskManager needs one address of it.
	// The server speaks HTTP/2 without TLS (h2c with prior knowledge)
	// only; H2CClient is a client for it.
	Handlers map[string]http.Handler
	// Logger receives the transport's logs. Default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills in the defaults of the fields left zero.
func (o *NetworkOptions) EnsureDefaults() {
	if o.Bind == "" {
		o.Bind = "127.0.0.1:0"
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 1 << 20
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 256 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Dial == nil {
		o.Dial = (&net.Dialer{Timeout: o.DialTimeout}).DialContext
	}
}

// Unreachable says messages to Address can no longer be delivered: its
// process could not be reached, its connection was lost, or its endpoint
// closed or never existed. Err wraps ErrUnreachable and says which.
type Unreachable struct {
	Address string
	Err     error
	// Unsent counts the dropped messages never written to the network;
	// Unacked those written whose delivery was not confirmed (the
	// receiver may or may not have them).
	Unsent, Unacked int
}

// ErrEndpointClosed is the cause in an Unreachable when the endpoint at
// the address closed (or its process shut its transport down) while this
// process had a stream to it.
var ErrEndpointClosed = errors.New("rpc: endpoint closed")

// endpointHeader names the endpoint a Deliver stream is for;
// senderHeader the sending Network and its spelling of the destination,
// streamHeader the stream's number there (increasing).
const (
	endpointHeader = "Strom-Endpoint"
	senderHeader   = "Strom-Sender"
	streamHeader   = "Strom-Stream"
)

// fence keeps one sender's streams to one endpoint in order. When a
// connection is cut, the sender opens a new stream, while the old one's
// last batch may still be in the receiver (another HTTP/2 connection,
// another handler goroutine): delivering it after the new stream's
// batches would break the order per sender. So the receiver delivers a
// batch only from the newest stream it has seen from that sender, under
// the fence's lock: an older stream's batch lands before the newer stream
// registers, or not at all — and the sender has counted it as unacked
// (Unreachable), so every message is still accounted for.
type fence struct {
	mu     sync.Mutex
	stream uint64
}

func newSenderID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var _ Transport = (*Network)(nil)

// H2CClient returns an HTTP client that speaks to a Network's server
// (HTTP/2 without TLS), for the paths of NetworkOptions.Handlers.
func H2CClient() *http.Client {
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: h2c}}
}

// NewNetwork starts the server of a network transport; Close stops it.
func NewNetwork(opts NetworkOptions) (*Network, error) {
	opts.EnsureDefaults()
	ln, err := net.Listen("tcp", opts.Bind)
	if err != nil {
		return nil, fmt.Errorf("rpc: listen on %s: %w", opts.Bind, err)
	}
	n := &Network{
		opts:      opts,
		log:       opts.Logger.With("component", "rpc"),
		host:      opts.Advertise,
		serve:     make(chan struct{}),
		endpoints: map[string]*mailbox{},
		peers:     map[string]*peer{},
		fences:    map[string]*fence{},
		id:        newSenderID(),
	}
	if n.host == "" {
		n.host = ln.Addr().String()
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())

	// Connect needs HTTP/2 for bidirectional streams; without TLS that is
	// h2c with prior knowledge, on both sides.
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	n.client = &http.Client{Transport: &http.Transport{Protocols: h2c, DialContext: opts.Dial}}

	mux := http.NewServeMux()
	mux.Handle(rpcpbconnect.NewEndpointServiceHandler(endpointService{n}, connect.WithReadMaxBytes(opts.MaxMessageBytes)))
	for pattern, h := range opts.Handlers {
		mux.Handle(pattern, h)
	}
	n.srv = &http.Server{
		Handler:           mux,
		Protocols:         h2c,
		ReadHeaderTimeout: 10 * time.Second,
		// One stream per sending process and endpoint: a process hosting
		// many JobMasters gets many streams from each TaskManager.
		HTTP2:    &http.HTTP2Config{MaxConcurrentStreams: 1 << 14},
		ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(n.serve)
		if err := n.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("rpc server stopped", "addr", n.host, "err", err)
		}
	}()
	return n, nil
}

// Addr is the host:port of this process's endpoints' addresses.
func (n *Network) Addr() string { return n.host }

// Close stops the transport: endpoints closed, streams to other processes
// ended (their queued messages dropped without an Unreachable), the
// server stopped and its port freed. It waits for every goroutine the
// transport started. Close is idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	endpoints := make([]*mailbox, 0, len(n.endpoints))
	for _, ep := range n.endpoints {
		endpoints = append(endpoints, ep)
	}
	peers := make([]*peer, 0, len(n.peers))
	for _, p := range n.peers {
		peers = append(peers, p)
	}
	n.mu.Unlock()

	for _, ep := range endpoints {
		ep.Close()
	}
	n.cancel()
	for _, p := range peers {
		p.abort()
	}
	// Close, not Shutdown: the Deliver streams never end by themselves.
	// Closing the connections ends the handlers' reads.
	err := n.srv.Close()
	<-n.serve
	n.peerWG.Wait()
	n.handlerWG.Wait()
	n.client.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("rpc: close server %s: %w", n.host, err)
	}
	return nil
}

// Listen creates the endpoint with the given name, or at the given
// address of this process ("host:port/name" with this process's
// Advertise host:port). Its Address is always the full address.
func (n *Network) Listen(address string) (Endpoint, error) {
	name := address
	if host, rest, ok := splitAddress(address); ok {
		if host != n.host {
			return nil, fmt.Errorf("rpc: listen on %q: this process is at %s", address, n.host)
		}
		name = rest
	}
	if name == "" {
		return nil, fmt.Errorf("rpc: listen on %q: no endpoint name", address)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("rpc: listen on %q: transport closed", address)
	}
	if _, ok := n.endpoints[name]; ok {
		return nil, fmt.Errorf("rpc: address %q is in use", n.host+"/"+name)
	}
	// Closing the endpoint closes ep.done, which tells every stream to it
	// (Deliver), so that its senders learn at once that it is gone.
	ep := newMailbox(n.host + "/" + name)
	ep.unlisten = func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.endpoints[name] == ep {
			delete(n.endpoints, name)
		}
	}
	n.endpoints[name] = ep
	return ep, nil
}

// splitAddress splits "host:port/name"; ok is false when address does
// not start with a host:port (a bare endpoint name has no colon before
// its first slash).
func splitAddress(address string) (host, name string, ok bool) {
	host, name, found := strings.Cut(address, "/")
	if !found || !strings.Contains(host, ":") {
		return "", "", false
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		return "", "", false
	}
	return host, name, true
}

// ResourceManager is a gateway to the ResourceManager at address.
func (n *Network) ResourceManager(address string) ResourceManagerGateway {
	return sendGateway{n.send, address}
}

// JobMaster is a gateway to the JobMaster at address.
func (n *Network) JobMaster(address string) JobMasterGateway { return sendGateway{n.send, address} }

// TaskManager is a gateway to the TaskManager at address.
func (n *Network) TaskManager(address string) TaskManagerGateway {
	return sendGateway{n.send, address}
}

// Dispatcher is a gateway to the Dispatcher at address.
func (n *Network) Dispatcher(address string) DispatcherGateway { return sendGateway{n.send, address} }

// send queues m for address, starting the address's peer if it has none.
func (n *Network) send(address string, m Message) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fmt.Errorf("%w %q: transport closed", ErrUnreachable, address)
	}
	p := n.peers[address]
	if p == nil {
		host, name, ok := splitAddress(address)
		if !ok {
			// A bare name is an endpoint of this process, as Listen
			// takes it: roles that name each other the way they do
			// over Local work unchanged in one process.
			host, name = n.host, address
		}
		if name == "" {
			return fmt.Errorf("%w %q: no endpoint name", ErrUnreachable, address)
		}
		p = &peer{n: n, address: address, name: name, queue: newMailbox(address),
			client: rpcpbconnect.NewEndpointServiceClient(n.client, "http://"+host)}
		n.peers[address] = p
		n.peerWG.Add(1)
		go p.run()
	}
	p.queue.push(m)
	return nil
}

// peer is this process's sending side to one destination address: its
// queue and the goroutine that drains it onto the destination's stream.
// It lives until the destination is lost or the transport closes; a send
// after a loss makes a new one.
type peer struct {
	n       *Network
	address string
	name    string
	client  rpcpbconnect.EndpointServiceClient
	queue   *mailbox // never closed: the peer is dropped instead

	mu     sync.Mutex
	stream *connect.BidiStreamForClient[rpcpb.DeliverRequest, rpcpb.DeliverResponse]
}

// abort ends p's stream from outside its goroutine, which may be blocked
// writing to a receiver that does not read (a frozen process): closing the
// response aborts the HTTP/2 stream, and with it the blocked write.
func (p *peer) abort() {
	p.mu.Lock()
	stream := p.stream
	p.mu.Unlock()
	if stream != nil {
		_ = stream.CloseResponse()
	}
}

func (p *peer) run() {
	defer p.n.peerWG.Done()
	ctx, cancel := context.WithCancel(p.n.ctx)
	defer cancel()
	stream := p.client.Deliver(ctx)
	stream.RequestHeader().Set(endpointHeader, p.name)
	// The sender as the receiver fences it: this Network and the
	// destination's spelling, whose queue keeps the order (two spellings
	// of one endpoint are two destinations, with no order between them).
	stream.RequestHeader().Set(senderHeader, p.n.id+" "+p.address)
	stream.RequestHeader().Set(streamHeader, strconv.FormatUint(p.n.streams.Add(1), 10))
	p.mu.Lock()
	p.stream = stream
	p.mu.Unlock()

	var acked atomic.Int64
	received := make(chan error, 1)
	// Open the stream now (headers only), so that a destination that
	// cannot be reached, or is lost while this process has nothing to
	// send, is reported at once.
	err := stream.Send(nil)
	go func() { received <- receiveAcks(stream, &acked) }()
	receiving := true

	var written int64 // messages written to the stream
	unsent := 0       // taken from the queue but not written
	for err == nil {
		select {
		case <-p.queue.Ready():
			var n int
			n, unsent, err = p.sendQueued(stream)
			written += int64(n)
		case err = <-received:
			receiving = false
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if receiving && p.n.ctx.Err() == nil {
		// A failed Send hides the cause (it wraps io.EOF); the receiving
		// side gets it, unless the stream is merely stuck.
		select {
		case cause := <-received:
			receiving = false
			if cause != nil {
				err = cause
			}
		case <-time.After(p.n.opts.DialTimeout):
		case <-p.n.ctx.Done():
		}
	}
	// End the stream on both sides: canceling alone does not stop net/http
	// while it waits for more of the request body, and leaves the response
	// read blocked.
	cancel()
	_ = stream.CloseRequest()
	_ = stream.CloseResponse()
	if receiving {
		<-received
	}
	if p.n.ctx.Err() != nil {
		return // Close: nothing to report
	}
	p.n.lost(p, err, unsent, int(written-acked.Load()))
}

// sendQueued writes what is queued to the stream, in requests of at most
// MaxBatchBytes (or one message). It returns how many messages it wrote
// and, when a write fails, how many it took from the queue but did not
// write.
func (p *peer) sendQueued(stream *connect.BidiStreamForClient[rpcpb.DeliverRequest, rpcpb.DeliverResponse]) (written, unsent int, err error) {
	msgs := p.queue.Receive()
	envs := make([]*rpcpb.Envelope, 0, len(msgs))
	sizes := make([]int, 0, len(msgs))
	for _, m := range msgs {
		e, err := MessageToProto(m)
		size := 0
		if err == nil {
			if size = proto.Size(e); size > p.n.opts.MaxMessageBytes {
				err = fmt.Errorf("%d bytes, more than MaxMessageBytes (%d)", size, p.n.opts.MaxMessageBytes)
			}
		}
		if err != nil {
			// Not the destination's fault: only this message is lost.
			p.n.log.Error("rpc message dropped", "to", p.address, "type", fmt.Sprintf("%T", m), "err", err)
			continue
		}
		envs, sizes = append(envs, e), append(sizes, size)
	}
	for len(envs) > 0 {
		k, size := 1, sizes[0]
		for k < len(envs) && size+sizes[k] <= p.n.opts.MaxBatchBytes {
			size += sizes[k]
			k++
		}
		if err := stream.Send(&rpcpb.DeliverRequest{Messages: envs[:k]}); err != nil {
			return written, len(envs), err
		}
		written += k
		envs, sizes = envs[k:], sizes[k:]
	}
	return written, 0, nil
}

// receiveAcks reads the stream's responses until it ends, counting the
// messages the receiver confirmed. It returns why the stream ended.
func receiveAcks(stream *connect.BidiStreamForClient[rpcpb.DeliverRequest, rpcpb.DeliverResponse], acked *atomic.Int64) error {
	for {
		res, err := stream.Receive()
		if err != nil {
			if errors.Is(err, io.EOF) {
				// The server ends a stream only when its endpoint or
				// whole transport closes.
				return ErrEndpointClosed
			}
			return err
		}
		acked.Add(int64(res.GetDelivered()))
		if res.GetClosed() {
			return ErrEndpointClosed
		}
	}
}

// lost forgets p and reports its destination unreachable.
func (n *Network) lost(p *peer, cause error, unsent, unacked int) {
	n.mu.Lock()
	if n.peers[p.address] == p {
		delete(n.peers, p.address)
	}
	n.mu.Unlock()
	// p is out of the map: no send reaches its queue any more.
	unsent += len(p.queue.Receive())
	ev := Unreachable{Address: p.address, Err: fmt.Errorf("%w %q: %w", ErrUnreachable, p.address, cause), Unsent: unsent, Unacked: unacked}
	level := slog.LevelWarn
	if unsent == 0 && unacked == 0 && errors.Is(cause, ErrEndpointClosed) {
		// An endpoint that closed with nothing of ours in flight is a
		// role that ended (a finished job's JobMaster, a cluster shutting
		// down): worth a debug line, not a warning.
		level = slog.LevelDebug
	}
	n.log.Log(n.ctx, level, "rpc destination unreachable", "to", p.address, "err", cause, "unsent", unsent, "unacked", unacked)
	if n.opts.OnUnreachable != nil {
		n.opts.OnUnreachable(ev)
	}
}

// endpointService is the server side: it puts what each stream brings
// into the mailbox of the stream's endpoint.
type endpointService struct{ n *Network }

func (s endpointService) Deliver(ctx context.Context, stream *connect.BidiStream[rpcpb.DeliverRequest, rpcpb.DeliverResponse]) error {
	n := s.n
	name := stream.RequestHeader().Get(endpointHeader)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return connect.NewError(connect.CodeUnavailable, errors.New("transport closed"))
	}
	ep := n.endpoints[name]
	if ep == nil {
		n.mu.Unlock()
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("no endpoint %q at %s", name, n.host))
	}
	var f *fence
	var streamNo uint64
	if sender := stream.RequestHeader().Get(senderHeader); sender != "" {
		streamNo, _ = strconv.ParseUint(stream.RequestHeader().Get(streamHeader), 10, 64)
		key := sender + "\x00" + name
		if f = n.fences[key]; f == nil {
			f = &fence{}
			n.fences[key] = f
		}
	}
	n.handlerWG.Add(1)
	n.mu.Unlock()
	defer n.handlerWG.Done()
	if f != nil {
		f.mu.Lock()
		if streamNo < f.stream {
			f.mu.Unlock()
			return connect.NewError(connect.CodeAborted, errors.New("stream superseded by a newer one from the same sender"))
		}
		f.stream = streamNo
		f.mu.Unlock()
	}

	// The stream's one sender: acknowledgements, and the notice that the
	// endpoint closed, which must not wait for the next request.
	var delivered atomic.Uint64
	poke := make(chan struct{}, 1)
	stop := make(chan struct{})
	responded := make(chan struct{})
	go func() {
		defer close(responded)
		for {
			select {
			case <-poke:
				if d := delivered.Swap(0); d > 0 && stream.Send(&rpcpb.DeliverResponse{Delivered: d}) != nil {
					return
				}
			case <-ep.done:
				_ = stream.Send(&rpcpb.DeliverResponse{Delivered: delivered.Swap(0), Closed: true})
				return
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() {
		close(stop)
		<-responded
	}()

	for {
		req, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		msgs := make([]Message, 0, len(req.GetMessages()))
		for _, e := range req.GetMessages() {
			m, err := MessageFromProto(e)
			if err != nil {
				// A sender that speaks another version: its messages
				// cannot be understood, so none after this one is
				// delivered either (order would be broken).
				return connect.NewError(connect.CodeInvalidArgument, err)
			}
			msgs = append(msgs, m)
		}
		if f != nil {
			f.mu.Lock()
		}
		if f != nil && f.stream != streamNo {
			f.mu.Unlock()
			return connect.NewError(connect.CodeAborted, errors.New("stream superseded by a newer one from the same sender"))
		}
		pushed := ep.push(msgs...)
		if f != nil {
			f.mu.Unlock()
		}
		if !pushed {
			return connect.NewError(connect.CodeNotFound, fmt.Errorf("endpoint %q closed", name))
		}
		delivered.Add(uint64(len(msgs)))
		select {
		case poke <- struct{}{}:
		default:
		}
	}
}
