package fdpass

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Magic opens every data connection to a TaskManager's data port. The
// trailing digit is the preamble's version.
const Magic = "STRMJOB1"

// MaxJobIDLen bounds the job id in a preamble: ids are short, and a
// TaskManager must not allocate what a stranger on its port claims.
const MaxJobIDLen = 128

// ErrBadPreamble is wrapped by ReadPreamble's errors about what the peer
// sent (as opposed to I/O errors): a wrong magic, a bad length.
var ErrBadPreamble = errors.New("fdpass: bad preamble")

// WritePreamble writes the preamble naming jobID in one Write, so it
// leaves in one segment ahead of the endpoint's own handshake.
func WritePreamble(w io.Writer, jobID string) error {
	return WriteHeader(w, Magic, "job id", jobID, MaxJobIDLen)
}

// WriteHeader writes a header in the preamble's format — an 8-byte magic,
// a uvarint length (1 to max) and value — in one Write. what names the
// value in errors. Other headers of the data plane (internal/datamux)
// share the format, so one reader tells them apart by their magic.
func WriteHeader(w io.Writer, magic, what, value string, max int) error {
	if len(magic) != len(Magic) {
		return fmt.Errorf("fdpass: header magic %q is not %d bytes", magic, len(Magic))
	}
	if err := checkLen(len(value), what, max); err != nil {
		return fmt.Errorf("fdpass: writing header for %s %q: %w", what, value, err)
	}
	b := make([]byte, 0, len(magic)+binary.MaxVarintLen16+len(value))
	b = append(b, magic...)
	b = binary.AppendUvarint(b, uint64(len(value)))
	b = append(b, value...)
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("fdpass: writing header for %s %q: %w", what, value, err)
	}
	return nil
}

// MaxHeaderLen bounds the max of WriteHeader and ReadValue: a length
// takes at most two uvarint bytes.
const MaxHeaderLen = 1<<14 - 1

func checkJobID(n int) error { return checkLen(n, "job id", MaxJobIDLen) }

func checkLen(n int, what string, max int) error {
	if n == 0 {
		return fmt.Errorf("%w: empty %s", ErrBadPreamble, what)
	}
	if n > max || n > MaxHeaderLen {
		return fmt.Errorf("%w: %s of %d bytes, at most %d", ErrBadPreamble, what, n, min(max, MaxHeaderLen))
	}
	return nil
}

// ReadPreamble reads a preamble and returns its job id. It reads exactly
// the preamble's bytes from r and not one more — no buffering — because
// the rest of the stream belongs to the worker the connection is handed
// to. The caller sets a read deadline: a peer that connects and says
// nothing must not hold the TaskManager.
func ReadPreamble(r io.Reader) (string, error) {
	magic, err := ReadMagic(r)
	if err != nil {
		return "", err
	}
	if magic != Magic {
		return "", fmt.Errorf("%w: magic %q, want %q (not a Strom data connection, or another version)", ErrBadPreamble, magic, Magic)
	}
	return ReadValue(r, "job id", MaxJobIDLen)
}

// ReadMagic reads the 8 bytes that open a header, so that a reader
// accepting several kinds of header (internal/datamux) can dispatch on
// them before ReadValue.
func ReadMagic(r io.Reader) (string, error) {
	var magic [len(Magic)]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return "", fmt.Errorf("fdpass: reading preamble magic: %w", err)
	}
	return string(magic[:]), nil
}

// ReadValue reads a header's length and value (after its magic), exactly
// those bytes; what names the value in errors, max bounds its length.
func ReadValue(r io.Reader, what string, max int) (string, error) {
	n, err := readLen(r, what, max)
	if err != nil {
		return "", fmt.Errorf("fdpass: reading preamble: %w", err)
	}
	v := make([]byte, n)
	if _, err := io.ReadFull(r, v); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", fmt.Errorf("fdpass: reading preamble %s: %w", what, err)
	}
	return string(v), nil
}

// readLen reads the value's uvarint length. Any valid length (at most
// MaxHeaderLen) fits in two varint bytes, so it reads at most two and
// never past the length, whatever the peer sent.
func readLen(r io.Reader, what string, max int) (int, error) {
	var b [1]byte
	n := 0
	for i := range 2 {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("%s length: %w", what, err)
		}
		n |= int(b[0]&0x7f) << (7 * i)
		if b[0] < 0x80 {
			return n, checkLen(n, what, max)
		}
	}
	return 0, fmt.Errorf("%w: %s length takes more than 2 bytes (at most %d)", ErrBadPreamble, what, min(max, MaxHeaderLen))
}

// Dialer returns a dial function for tcp.Config.Dial that dials with d (a
// net.Dialer if nil) and writes the preamble naming jobID, so the
// TaskManager at addr hands the connection to that job's worker. The
// preamble's write is bounded by ctx, and the connection is closed if it
// fails.
func Dialer(jobID string, d func(ctx context.Context, addr string) (net.Conn, error)) func(ctx context.Context, addr string) (net.Conn, error) {
	if d == nil {
		var nd net.Dialer
		d = func(ctx context.Context, addr string) (net.Conn, error) { return nd.DialContext(ctx, "tcp", addr) }
	}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		if err := checkJobID(len(jobID)); err != nil {
			return nil, fmt.Errorf("fdpass: dialling %s for job %q: %w", addr, jobID, err)
		}
		c, err := d(ctx, addr)
		if err != nil {
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetWriteDeadline(dl)
		}
		// A cancel without a deadline must still stop a write stuck on a
		// peer that does not read: an immediate deadline interrupts it.
		stop := context.AfterFunc(ctx, func() { _ = c.SetWriteDeadline(time.Unix(1, 0)) })
		err = WritePreamble(c, jobID)
		interrupted := !stop()
		if err == nil && interrupted {
			err = ctx.Err()
		}
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("fdpass: dialling %s: %w", addr, err)
		}
		_ = c.SetWriteDeadline(time.Time{})
		return c, nil
	}
}
