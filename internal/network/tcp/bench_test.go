package tcp_test

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/network/tcp"
)

// BenchmarkTCPThroughput streams batches of 1024 records over one loopback
// connection between two endpoints of this process: a producer goroutine
// per channel fills its channel as a Writer would, the benchmark
// goroutine consumes and recycles as an input gate would. One op is one
// record; records/s and the wire's MB/s (frames as encoded) are
// reported. The 16-channel case multiplexes 16 channels on the one
// connection.
func BenchmarkTCPThroughput(b *testing.B) {
	b.Run("int64", func(b *testing.B) {
		benchThroughput(b, 1, func(i int64) int64 { return i * 7919 })
	})
	b.Run("struct-with-string", func(b *testing.B) {
		benchThroughput(b, 1, func(i int64) Item { return Item{ID: i, Name: "bidder-0123456789"} })
	})
	b.Run("int64-16-channels", func(b *testing.B) {
		benchThroughput(b, 16, func(i int64) int64 { return i * 7919 })
	})
}

func benchThroughput[T any](b *testing.B, channels int, val func(int64) T) {
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
	opts := tcp.ChannelOptions{BatchSize: batch}
	notify := network.NewNotifier()
	outs := make([]*network.Channel[T], channels)
	ins := make([]*network.Channel[T], channels)
	for i := range channels {
		k := network.ChannelKey{Job: "bench", Edge: 1, Producer: i}
		if outs[i], err = tcp.Output[T](p, k, cd, opts); err != nil {
			b.Fatal(err)
		}
		if ins[i], err = tcp.Input[T](context.Background(), c, k, p.Addr(), cd, notify, opts); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	per := (b.N + channels - 1) / channels
	for _, out := range outs {
		wg.Go(func() {
			n := int64(0)
			for n < int64(per) {
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
		})
	}
	got, want := 0, per*channels
	for got < want {
		progress := false
		for _, in := range ins {
			if bt, ok := in.Poll(); ok {
				got += len(bt.Recs)
				in.Recycle(bt)
				progress = true
			}
		}
		if !progress {
			<-notify
		}
	}
	b.StopTimer()
	cpu := (cpuTime() - cpu0).Seconds()
	cancel()
	wg.Wait()
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(got)/sec, "records/s")
	wire := p.Stats().BytesSent
	b.ReportMetric(float64(wire)/sec/1e6, "MB/s")
	b.ReportMetric(float64(wire)/float64(got), "B/record")
	// Both ends' CPU (the whole process: producers, forwarders, reader,
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
