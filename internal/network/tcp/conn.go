package tcp

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strom-dev/strom/internal/network"
)

// conn is one TCP connection to a peer endpoint. The consumer's endpoint
// dials it (dialled), the producer's accepts it; data flows from the
// acceptor to the dialler, open, credit and close frames mostly the other
// way. Two goroutines serve it: readLoop, and ctrlLoop, which writes the
// queued control frames. Data frames are written by the channels'
// forwarders themselves (writeFrame).
type conn struct {
	ep      *Endpoint
	nc      net.Conn
	peer    string
	dialled bool
	br      *bufio.Reader

	// wmu serialises writes; waiting counts writers queued on it, so the
	// last of a burst flushes the buffer (one syscall for many frames,
	// none held back while nobody else is about to write).
	wmu     sync.Mutex
	bw      *bufio.Writer
	waiting atomic.Int32

	mu sync.Mutex
	// failed is set once, with the error that ended the connection.
	failed error
	// nextID is the dialler's next channel id.
	nextID uint64
	// ins are the dialler's channels by id; outs and outKeys the
	// acceptor's (outs[id] is nil while the requested channel has no
	// producer yet: Endpoint.pending).
	ins     map[uint64]inChan
	outs    map[uint64]outChan
	outKeys map[uint64]network.ChannelKey
	// ctrl holds encoded open and close frames for ctrlLoop; credits the
	// inputs with credit to return (spare is the other buffer of the
	// pair, swapped so queuing allocates nothing once warm).
	ctrl           []byte
	credits, spare []creditor
	kick           network.Notifier
	closed         chan struct{}
}

// inChan is the receiving side of one channel, whatever its record type.
type inChan interface {
	creditor
	// deliver takes the batch of a frame (after the channel id). Its
	// error fails the channel only: the frame was read whole, so the
	// connection stays in sync.
	deliver(r *reader) error
	// stop ends the channel: report says whether its owner hears of err.
	stop(err error, report bool)
	// ended reports whether the channel delivered its end of partition.
	ended() bool
	key() network.ChannelKey
	buffers() int
}

// creditor is an input with recycled batches to report.
type creditor interface {
	// takeCredit returns the channel's id and the batches recycled since
	// the last call, and lets the next recycle queue it again.
	takeCredit() (id uint64, n int64)
}

// outChan is the sending side of one channel.
type outChan interface {
	credit(n int64)
	bind(c *conn, id uint64)
	isBound() bool
	stop(err error, report bool)
	ended() bool
	key() network.ChannelKey
	buffers() int
}

func newConn(ep *Endpoint, nc net.Conn, peer string, dialled bool) *conn {
	return &conn{
		ep: ep, nc: nc, peer: peer, dialled: dialled,
		br:      bufio.NewReaderSize(nc, 64<<10),
		bw:      bufio.NewWriterSize(nc, 64<<10),
		nextID:  1,
		ins:     map[uint64]inChan{},
		outs:    map[uint64]outChan{},
		outKeys: map[uint64]network.ChannelKey{},
		kick:    network.NewNotifier(),
		closed:  make(chan struct{}),
	}
}

// start runs the connection's goroutines (counted in the endpoint's wait
// group, which the caller has added 2 to).
func (c *conn) start(handshake bool) {
	go c.readLoop(handshake)
	go c.ctrlLoop()
}

// exchangeHello writes our hello and checks the peer's.
func exchangeHello(nc net.Conn, br *bufio.Reader, deadline time.Time) error {
	if err := nc.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := io.WriteString(nc, hello); err != nil {
		return fmt.Errorf("writing hello: %w", err)
	}
	var got [len(hello)]byte
	if _, err := io.ReadFull(br, got[:]); err != nil {
		return fmt.Errorf("reading hello: %w", err)
	}
	if string(got[:]) != hello {
		return fmt.Errorf("%w: peer hello %q, want %q (another protocol or version)", ErrProtocol, got[:], hello)
	}
	return nc.SetDeadline(time.Time{})
}

// writeFrame writes encoded frames, flushing unless another writer is
// waiting to add to the buffer.
func (c *conn) writeFrame(b []byte) error {
	c.waiting.Add(1)
	c.wmu.Lock()
	c.waiting.Add(-1)
	defer c.wmu.Unlock()
	select {
	case <-c.closed:
		return c.err()
	default:
	}
	if t := c.ep.cfg.WriteTimeout; t > 0 {
		if err := c.nc.SetWriteDeadline(time.Now().Add(t)); err != nil {
			return err
		}
	}
	if _, err := c.bw.Write(b); err != nil {
		return err
	}
	c.ep.sent.Add(int64(len(b)))
	if c.waiting.Load() == 0 {
		return c.bw.Flush()
	}
	return nil
}

func (c *conn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

// fail ends the connection once: it closes the socket, forgets the
// connection and stops every channel on it with err, reported to those
// that had not ended (an end of partition sent or received: nothing more
// was to cross).
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.failed != nil {
		c.mu.Unlock()
		return
	}
	c.failed = err
	ins, outs := c.ins, c.outs
	c.ins, c.outs, c.outKeys = nil, nil, nil
	c.mu.Unlock()
	close(c.closed)
	_ = c.nc.Close()
	c.ep.forget(c)
	if !errors.Is(err, ErrClosed) {
		c.ep.log.Warn("data connection failed", "peer", c.peer, "channels", len(ins)+len(outs), "err", err)
	}
	for _, in := range ins {
		c.ep.dropInput(in)
		in.stop(err, !in.ended())
	}
	for _, o := range outs {
		if o != nil {
			c.ep.dropOutput(o)
			o.stop(err, !o.ended())
		}
	}
}

// lost wraps a read or write error as a lost connection.
func (c *conn) lost(err error) error {
	if errors.Is(err, ErrProtocol) {
		return fmt.Errorf("data connection with %s: %w", c.peer, err)
	}
	return fmt.Errorf("%w: with %s: %w", ErrConnectionLost, c.peer, err)
}

func (c *conn) readLoop(handshake bool) {
	defer c.ep.wg.Done()
	if handshake {
		if err := exchangeHello(c.nc, c.br, time.Now().Add(c.ep.cfg.DialTimeout)); err != nil {
			c.fail(c.lost(err))
			return
		}
		c.kick.Notify() // writes may have queued meanwhile
	}
	var hdr [headerLen]byte
	var body []byte
	for {
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			c.fail(c.lost(err))
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > maxFrame {
			c.fail(c.lost(fmt.Errorf("%w: frame length %d", ErrProtocol, n)))
			return
		}
		if cap(body) < int(n) {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(c.br, body); err != nil {
			c.fail(c.lost(err))
			return
		}
		c.ep.received.Add(int64(headerLen + n))
		if err := c.handle(frameType(body[0]), &reader{p: body[1:]}); err != nil {
			c.fail(c.lost(err))
			return
		}
	}
}

// handle acts on one frame; its error ends the connection.
func (c *conn) handle(t frameType, r *reader) error {
	switch t {
	case frameBatch:
		if !c.dialled {
			return fmt.Errorf("%w: batch frame to the producer's side", ErrProtocol)
		}
		id := r.uvarint()
		if r.err != nil {
			return r.err
		}
		c.mu.Lock()
		in := c.ins[id]
		c.mu.Unlock()
		if in == nil {
			return nil // released here: its frames in flight are dropped
		}
		if err := in.deliver(r); err != nil {
			if errors.Is(err, ErrProtocol) {
				return err
			}
			// A record the codec refused: this channel fails, the
			// others on the connection go on.
			err = fmt.Errorf("channel %v from %s: %w", in.key(), c.peer, err)
			c.closeChannel(id, err.Error())
			c.ep.dropInput(in)
			in.stop(err, true)
		}
		return nil
	case frameCredit:
		for r.err == nil && len(r.p) > 0 {
			id, n := r.uvarint(), r.uvarint()
			if r.err != nil {
				break
			}
			c.mu.Lock()
			o := c.outs[id]
			c.mu.Unlock()
			if o != nil {
				o.credit(int64(n))
			}
		}
		return r.err
	case frameOpen:
		if c.dialled {
			return fmt.Errorf("%w: open frame to the consumer's side", ErrProtocol)
		}
		id := r.uvarint()
		k := readKey(r)
		buffers := r.uvarint()
		if r.err != nil {
			return r.err
		}
		return c.ep.open(c, id, k, int(buffers))
	case frameClose:
		id := r.uvarint()
		reason := string(r.bytes())
		if r.err != nil {
			return r.err
		}
		c.peerClosed(id, reason)
		return nil
	}
	return fmt.Errorf("%w: unknown frame type %d", ErrProtocol, t)
}

// peerClosed drops channel id, which the peer released or failed: its
// owner hears of it unless the channel had ended normally.
func (c *conn) peerClosed(id uint64, reason string) {
	c.mu.Lock()
	var in inChan
	var o outChan
	var k network.ChannelKey
	var requested bool
	if c.dialled {
		in = c.ins[id]
		delete(c.ins, id)
	} else {
		o = c.outs[id]
		k, requested = c.outKeys[id]
		delete(c.outs, id)
		delete(c.outKeys, id)
	}
	c.mu.Unlock()
	err := fmt.Errorf("%w (peer %s)", ErrPeerClosed, c.peer)
	if reason != "" {
		err = fmt.Errorf("%w (peer %s): %s", ErrPeerClosed, c.peer, reason)
	}
	switch {
	case in != nil:
		c.ep.dropInput(in)
		in.stop(err, !in.ended())
	case o != nil:
		c.ep.dropOutput(o)
		o.stop(err, !o.ended())
	case requested:
		c.ep.dropPending(k, c, id)
	}
}

// closeChannel forgets channel id here and tells the peer (reason: why
// it failed; empty for a release).
func (c *conn) closeChannel(id uint64, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed != nil {
		return
	}
	delete(c.ins, id)
	delete(c.outs, id)
	delete(c.outKeys, id)
	start := len(c.ctrl)
	c.ctrl = beginFrame(c.ctrl, frameClose)
	c.ctrl = binary.AppendUvarint(c.ctrl, id)
	c.ctrl = appendBytes(c.ctrl, []byte(reason))
	c.ctrl = endFrame(c.ctrl, start)
	c.kick.Notify()
}

// register gives in an id on this (dialled) connection and queues its
// open frame.
func (c *conn) register(in inChan) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed != nil {
		return 0, c.failed
	}
	id := c.nextID
	c.nextID++
	c.ins[id] = in
	start := len(c.ctrl)
	c.ctrl = beginFrame(c.ctrl, frameOpen)
	c.ctrl = binary.AppendUvarint(c.ctrl, id)
	c.ctrl = appendKey(c.ctrl, in.key())
	c.ctrl = binary.AppendUvarint(c.ctrl, uint64(in.buffers()))
	c.ctrl = endFrame(c.ctrl, start)
	c.kick.Notify()
	return id, nil
}

// queueCredit asks ctrlLoop to send in's credit.
func (c *conn) queueCredit(in creditor) {
	c.mu.Lock()
	if c.failed == nil {
		c.credits = append(c.credits, in)
	}
	c.mu.Unlock()
	c.kick.Notify()
}

// ctrlLoop writes the queued open, close and credit frames.
func (c *conn) ctrlLoop() {
	defer c.ep.wg.Done()
	var buf []byte
	for {
		select {
		case <-c.kick:
		case <-c.closed:
			return
		}
		c.mu.Lock()
		buf = append(buf[:0], c.ctrl...)
		c.ctrl = c.ctrl[:0]
		cr := c.credits
		c.credits, c.spare = c.spare[:0], cr
		c.mu.Unlock()
		if len(cr) > 0 {
			start := len(buf)
			buf = beginFrame(buf, frameCredit)
			pairs := 0
			for _, in := range cr {
				if id, n := in.takeCredit(); n > 0 {
					buf = binary.AppendUvarint(buf, id)
					buf = binary.AppendUvarint(buf, uint64(n))
					pairs++
				}
			}
			if pairs > 0 {
				buf = endFrame(buf, start)
			} else {
				buf = buf[:start]
			}
			clear(cr)
		}
		if len(buf) == 0 {
			continue
		}
		if err := c.writeFrame(buf); err != nil {
			c.fail(c.lost(err))
			return
		}
	}
}
