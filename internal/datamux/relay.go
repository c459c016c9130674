package datamux

import (
	"io"
	"net"
	"sync"

	"github.com/hashicorp/yamux"
)

// bufSize is each direction's copy buffer. Measured with BenchmarkRelay
// (one stream, worker to worker through both TaskManagers, 2 shared
// vCPUs): 16 KiB 0.77-0.81 GB/s, 32 KiB 1.0-1.05, 64 KiB 0.87-1.27,
// 256 KiB 0.98-1.34. Above 32 KiB the differences are within the noise
// of the shared machine; 64 KiB holds a whole endpoint batch and costs a
// quarter of 256 KiB per stream (two buffers a side).
var bufSize = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// halfCloser is a local connection: a unix socket.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// relay copies between a worker's local connection and a stream until
// both directions end, then closes both. An EOF is passed on as a
// half-close; anything else (an error, the session gone) closes both
// sides outright, so the failure reaches the tasks on both TaskManagers.
func relay(local halfCloser, st *yamux.Stream) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := copyBuf(st, local); err != nil {
			// The worker's end failed, or the stream's writes: nothing
			// more goes either way.
			_ = local.Close()
			_ = st.Close()
			return
		}
		_ = st.Close() // FIN: the peer reads EOF, and may still write
	}()
	err := copyBuf(local, st)
	switch {
	case err == nil && !st.Session().IsClosed():
		_ = local.CloseWrite()
	case err == nil:
		// yamux reads EOF on every stream of a session that died: that
		// is no end of stream, the local side must fail.
		_ = local.Close()
	default:
		// The worker is gone (or its end is closed): close the stream and
		// keep reading it, so that the peer's writes do not stall on a
		// full window until it notices.
		_ = local.Close()
		_ = st.Close()
		_ = copyBuf(io.Discard, st)
	}
	wg.Wait()
	_ = local.Close()
	_ = st.Close()
}

// copyBuf copies src to dst with a pooled buffer; it returns nil at src's
// EOF. The wrappers hide ReaderFrom and WriterTo, so the buffer is the
// one used.
func copyBuf(dst io.Writer, src io.Reader) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
	return err
}
