package fdpass_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/strom-dev/strom/internal/fdpass"
)

// A TaskManager hands a data connection to a job's worker. Both sides run
// in one process here; in the runtime the child end goes to the worker
// through exec.Cmd.ExtraFiles and the worker calls Listen on fd 3.
func Example() {
	// TaskManager: the pair, then (after starting the worker) its hello.
	sender, childEnd, err := fdpass.Pair()
	if err != nil {
		panic(err)
	}
	defer sender.Close()
	dataPort, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer dataPort.Close()

	// Worker: its listener advertises the TaskManager's data address.
	worker, err := fdpass.Listen(childEnd, dataPort.Addr().String())
	if err != nil {
		panic(err)
	}
	defer worker.Close()
	if err := worker.Hello("127.0.0.1:7000"); err != nil {
		panic(err)
	}
	rpcAddr, err := sender.ReadHello(10 * time.Second)
	if err != nil {
		panic(err)
	}
	fmt.Println("worker's RPC address:", rpcAddr)

	// A peer dials the TaskManager for the job and writes right away.
	go func() {
		c, err := fdpass.Dialer("job-1", nil)(context.Background(), worker.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("records"))
	}()

	// TaskManager: accept, read the preamble under a deadline, hand over.
	c, err := dataPort.Accept()
	if err != nil {
		panic(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	job, err := fdpass.ReadPreamble(c)
	if err != nil {
		panic(err)
	}
	_ = c.SetReadDeadline(time.Time{})
	fmt.Println("connection for", job)
	if err := sender.Send(c); err != nil {
		panic(err)
	}

	// Worker: the socket itself, its stream starting after the preamble.
	wc, err := worker.Accept()
	if err != nil {
		panic(err)
	}
	defer wc.Close()
	data, err := io.ReadAll(wc)
	if err != nil {
		panic(err)
	}
	fmt.Printf("worker read %q\n", data)
	// Output:
	// worker's RPC address: 127.0.0.1:7000
	// connection for job-1
	// worker read "records"
}
