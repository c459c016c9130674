package datamux

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
)

// BenchmarkRelay moves 64 MiB per op from a worker on one node to a
// worker on the other, through both relays and the session, for the copy
// buffer sizes in question (relay.go's bufSize):
//
//	go test ./internal/datamux -run xxx -bench Relay -benchtime 4x
func BenchmarkRelay(b *testing.B) {
	defer func(n int) { setBufSize(n) }(bufSize)
	for _, size := range []int{16 << 10, 32 << 10, 64 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("buf=%dKiB", size>>10), func(b *testing.B) {
			setBufSize(size)
			a, c := newNode(b, nil), newNode(b, nil)
			const total = 64 << 20
			chunk := make([]byte, 64<<10)
			b.SetBytes(total)
			b.ResetTimer()
			for range b.N {
				w := a.dial(b, "job", c.addr)
				r := c.next(b)
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					for sent := 0; sent < total; sent += len(chunk) {
						if _, err := w.Write(chunk); err != nil {
							b.Error(err)
							return
						}
					}
					_ = w.(*net.UnixConn).CloseWrite()
				}()
				n, err := io.Copy(io.Discard, r.c)
				wg.Wait()
				if err != nil || n != total {
					b.Fatalf("read %d bytes (%v), want %d", n, err, total)
				}
				_ = w.Close()
				_ = r.c.Close()
			}
		})
	}
}

func setBufSize(n int) {
	bufSize = n
	bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}
}
