package tcp_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/network/tcp"
)

// BenchmarkTCPThroughput streams batches of 1024 records over one loopback
// connection between two endpoints of this process: a producer goroutine
// fills the channel as a Writer would, the benchmark goroutine consumes
// and recycles as an input gate would. One op is one record; records/s
// and the wire's MB/s (frames as encoded) are reported.
func BenchmarkTCPThroughput(b *testing.B) {
	b.Run("int64", func(b *testing.B) {
		benchThroughput(b, func(i int64) int64 { return i * 7919 })
	})
	b.Run("struct-with-string", func(b *testing.B) {
		benchThroughput(b, func(i int64) Item { return Item{ID: i, Name: "bidder-0123456789"} })
	})
}

func benchThroughput[T any](b *testing.B, val func(int64) T) {
	const batch = 1024
	p, err := tcp.Listen(tcp.Config{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	c, err := tcp.Listen(tcp.Config{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cd := codec.Of[T]()
	k := network.ChannelKey{Job: "bench", Edge: 1}
	opts := tcp.ChannelOptions{BatchSize: batch}
	out, err := tcp.Output[T](p, k, cd, opts)
	if err != nil {
		b.Fatal(err)
	}
	notify := network.NewNotifier()
	in, err := tcp.Input[T](context.Background(), c, k, p.Addr(), cd, notify, opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	go func() {
		defer close(done)
		n := int64(0)
		for n < int64(b.N) {
			bt, err := out.Acquire(ctx)
			if err != nil {
				return
			}
			for range batch {
				bt.Recs = append(bt.Recs, network.Rec[T]{V: val(1_000_000 + n), Ts: 1_700_000_000_000 + n})
				n++
			}
			out.Send(bt)
		}
	}()
	got := 0
	for got < b.N {
		bt, ok := in.Poll()
		if !ok {
			<-notify
			continue
		}
		got += len(bt.Recs)
		in.Recycle(bt)
	}
	b.StopTimer()
	cpu := (cpuTime() - cpu0).Seconds()
	cancel()
	<-done
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(got)/sec, "records/s")
	wire := p.Stats().BytesSent
	b.ReportMetric(float64(wire)/sec/1e6, "MB/s")
	b.ReportMetric(float64(wire)/float64(got), "B/record")
	// Both ends' CPU (the whole process: producer, forwarder, reader,
	// consumer): on a shared machine a steadier figure than wall time.
	b.ReportMetric(float64(got)/cpu, "records/CPU-s")
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
