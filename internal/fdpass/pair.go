package fdpass

import (
	"fmt"
	"net"
	"os"
)

// SocketPair returns the two connected ends of a unix stream socket pair,
// both close-on-exec. A TaskManager that relays a stream for a worker
// (internal/datamux) hands one end to the worker with Sender.Send and
// copies between the other and the stream.
func SocketPair() (a, b *net.UnixConn, err error) {
	fds, err := socketpair()
	if err != nil {
		return nil, nil, fmt.Errorf("fdpass: socketpair: %w", os.NewSyscallError("socketpair", err))
	}
	var conns [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "fdpass-pair")
		nc, err := net.FileConn(f)
		_ = f.Close() // FileConn made its own copy
		if err != nil {
			for _, c := range conns[:i] {
				_ = c.Close()
			}
			for _, fd := range fds[i+1:] {
				_ = os.NewFile(uintptr(fd), "").Close()
			}
			return nil, nil, fmt.Errorf("fdpass: wrapping socket pair: %w", err)
		}
		conns[i] = nc.(*net.UnixConn)
	}
	return conns[0], conns[1], nil
}
