package rpc

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/rpc/rpcpb"
	"github.com/strom-dev/strom/internal/rpc/rpcpb/rpcpbconnect"
	"github.com/strom-dev/strom/internal/scheduler"
)

// waitFor bounds every wait of these tests: far longer than loopback
// needs, short enough that a lost message fails the test instead of
// hanging it.
const waitFor = 10 * time.Second

// newTestNetwork starts a transport on loopback, closed (and checked
// closed) with the test. Its Unreachable events go to the returned
// channel.
func newTestNetwork(t *testing.T, opts NetworkOptions) (*Network, <-chan Unreachable) {
	t.Helper()
	events := make(chan Unreachable, 1024)
	opts.OnUnreachable = func(u Unreachable) { events <- u }
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	n, err := NewNetwork(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, n.Close()) })
	return n, events
}

// collect receives from ep until it has want messages, failing after
// waitFor.
func collect(t *testing.T, ep Endpoint, want int) []Message {
	t.Helper()
	var got []Message
	deadline := time.After(waitFor)
	for len(got) < want {
		select {
		case <-ep.Ready():
			got = append(got, ep.Receive()...)
		case <-deadline:
			t.Fatalf("%s: got %d messages, want %d", ep.Address(), len(got), want)
		}
	}
	require.Len(t, got, want, "%s: more messages than sent", ep.Address())
	return got
}

// nextEvent is the next Unreachable, failing after waitFor.
func nextEvent(t *testing.T, events <-chan Unreachable) Unreachable {
	t.Helper()
	select {
	case u := <-events:
		return u
	case <-time.After(waitFor):
		t.Fatal("no Unreachable reported")
	}
	return Unreachable{}
}

// roleAddresses are the four roles' endpoints in one process.
type roleAddresses struct{ rm, jm, tm, disp string }

// sendByGateway sends m through the gateway method of the role it is
// for, so every method of every gateway is exercised; it returns the
// address it went to.
func sendByGateway(tr Transport, to roleAddresses, m Message) (string, error) {
	rm, jm, tm, disp := tr.ResourceManager(to.rm), tr.JobMaster(to.jm), tr.TaskManager(to.tm), tr.Dispatcher(to.disp)
	switch m := m.(type) {
	case RegisterTaskManager:
		return to.rm, rm.RegisterTaskManager(m)
	case RequestSlots:
		return to.rm, rm.RequestSlots(m)
	case CancelSlotRequest:
		return to.rm, rm.CancelSlotRequest(m)
	case ReleaseSlots:
		return to.rm, rm.ReleaseSlots(m)
	case SlotsGranted:
		return to.jm, jm.SlotsGranted(m)
	case SlotsRefused:
		return to.jm, jm.SlotsRefused(m)
	case TaskStateUpdate:
		return to.jm, jm.UpdateTaskState(m)
	case MetricsReport:
		return to.jm, jm.ReportMetrics(m)
	case CancelJob:
		return to.jm, jm.CancelJob(m)
	case AcknowledgeCheckpoint:
		return to.jm, jm.AcknowledgeCheckpoint(m)
	case DeclineCheckpoint:
		return to.jm, jm.DeclineCheckpoint(m)
	case TaskEndOfInput:
		return to.jm, jm.EndOfInput(m)
	case TriggerSavepoint:
		return to.jm, jm.TriggerSavepoint(m)
	case DeployTask:
		return to.tm, tm.DeployTask(m)
	case CancelTask:
		return to.tm, tm.CancelTask(m)
	case TriggerCheckpoint:
		return to.tm, tm.TriggerCheckpoint(m)
	case AbortCheckpoint:
		return to.tm, tm.AbortCheckpoint(m)
	case NotifyCheckpointComplete:
		return to.tm, tm.NotifyCheckpointComplete(m)
	case SavepointTarget:
		return to.tm, tm.SavepointTarget(m)
	case DrainSource:
		return to.tm, tm.DrainSource(m)
	case HeartbeatRequest:
		return to.tm, tm.RequestHeartbeat(m)
	case ReleaseChannels:
		return to.tm, tm.ReleaseChannels(m)
	case TaskManagerHeartbeat:
		return to.jm, jm.HeartbeatFromTaskManager(m)
	case JobStatus:
		return to.disp, disp.UpdateJobStatus(m)
	case JobFinished:
		return to.disp, disp.JobFinished(m)
	case SavepointResult:
		return to.disp, disp.SavepointResult(m)
	}
	return "", fmt.Errorf("no gateway method sends %T", m)
}

// Every gateway method delivers its message from one process to another,
// every field intact, in the order sent per endpoint.
func TestNetworkDeliversEveryGatewayMethodAcross(t *testing.T) {
	a, events := newTestNetwork(t, NetworkOptions{})
	b, _ := newTestNetwork(t, NetworkOptions{})
	eps := map[string]Endpoint{}
	var to roleAddresses
	for _, x := range []struct {
		name string
		addr *string
	}{{"resourcemanager", &to.rm}, {"jobmaster/job-1", &to.jm}, {"taskmanager/tm-1", &to.tm}, {"dispatcher", &to.disp}} {
		ep, err := b.Listen(x.name)
		require.NoError(t, err)
		require.Equal(t, b.Addr()+"/"+x.name, ep.Address())
		*x.addr = ep.Address()
		eps[ep.Address()] = ep
	}

	want := map[string][]Message{}
	for _, m := range messages {
		addr, err := sendByGateway(a, to, m)
		require.NoError(t, err)
		want[addr] = append(want[addr], m)
	}
	for addr, msgs := range want {
		got := collect(t, eps[addr], len(msgs))
		for i := range msgs {
			require.True(t, reflect.DeepEqual(msgs[i], got[i]), "%s message %d: got %+v, want %+v", addr, i, got[i], msgs[i])
		}
	}
	require.Len(t, want, 4, "every role got messages")
	require.Empty(t, events, "nothing was unreachable")
}

// Many senders, in several processes, to one endpoint: each sender's
// messages arrive complete and in the order it sent them.
func TestNetworkKeepsOrderPerSenderUnderConcurrency(t *testing.T) {
	const processes, goroutines, each = 3, 4, 300
	recv, _ := newTestNetwork(t, NetworkOptions{})
	ep, err := recv.Listen("jobmaster/job-1")
	require.NoError(t, err)

	var wg sync.WaitGroup
	for p := range processes {
		// Small batches, so order must hold across many requests.
		send, _ := newTestNetwork(t, NetworkOptions{MaxBatchBytes: 64})
		for g := range goroutines {
			wg.Go(func() {
				jm := send.JobMaster(ep.Address())
				for i := range each {
					// Vertex names the sender, Subtask its sequence.
					id := scheduler.ExecutionID{Vertex: p*goroutines + g, Subtask: i}
					if err := jm.EndOfInput(TaskEndOfInput{JobID: "job-1", Execution: id}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	next := map[int]int{}
	for _, m := range collect(t, ep, processes*goroutines*each) {
		id := m.(TaskEndOfInput).Execution
		require.Equal(t, next[id.Vertex], id.Subtask, "sender %d out of order", id.Vertex)
		next[id.Vertex]++
	}
	require.Len(t, next, processes*goroutines)
}

// A process nobody listens at is reported unreachable, with every message
// sent to it counted; so is an endpoint its process does not have. The
// sends themselves succeed: the sender's loop never waits for the network.
func TestNetworkReportsUnreachableAddresses(t *testing.T) {
	a, events := newTestNetwork(t, NetworkOptions{})
	b, _ := newTestNetwork(t, NetworkOptions{})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String() + "/taskmanager/tm-9"
	require.NoError(t, ln.Close())
	tm := a.TaskManager(dead)
	for range 5 {
		require.NoError(t, tm.CancelTask(CancelTask{JobID: "job-1", Execution: exec}))
	}
	u := nextEvent(t, events)
	require.Equal(t, dead, u.Address)
	require.ErrorIs(t, u.Err, ErrUnreachable)
	require.Equal(t, 5, u.Unsent+u.Unacked, "every message sent is counted: %+v", u)

	missing := b.Addr() + "/jobmaster/nobody"
	require.NoError(t, a.JobMaster(missing).CancelJob(CancelJob{JobID: "nobody"}))
	u = nextEvent(t, events)
	require.Equal(t, missing, u.Address)
	require.ErrorIs(t, u.Err, ErrUnreachable)
	require.Equal(t, connect.CodeNotFound, connect.CodeOf(u.Err))
	require.Equal(t, 1, u.Unsent+u.Unacked)

	// A bare name is an endpoint of this process: here there is none.
	require.NoError(t, a.JobMaster("jobmaster/nobody").CancelJob(CancelJob{}))
	u = nextEvent(t, events)
	require.Equal(t, "jobmaster/nobody", u.Address, "reported by the address the sender used")
	require.Equal(t, connect.CodeNotFound, connect.CodeOf(u.Err))
	// An empty address fails at once.
	require.ErrorIs(t, a.JobMaster("").CancelJob(CancelJob{}), ErrUnreachable)
	require.Empty(t, events)
}

// A destination whose process goes away, or whose endpoint closes, is
// reported at once, even while nothing is being sent to it; a later send
// to it tries again and is reported again.
func TestNetworkReportsALostPeer(t *testing.T) {
	a, events := newTestNetwork(t, NetworkOptions{})

	// The whole process goes: its connections close.
	b, err := NewNetwork(NetworkOptions{})
	require.NoError(t, err)
	ep, err := b.Listen("taskmanager/tm-1")
	require.NoError(t, err)
	require.NoError(t, a.TaskManager(ep.Address()).CancelTask(CancelTask{JobID: "job-1"}))
	collect(t, ep, 1)
	require.NoError(t, b.Close())
	u := nextEvent(t, events)
	require.Equal(t, ep.Address(), u.Address)
	require.ErrorIs(t, u.Err, ErrUnreachable)
	require.Zero(t, u.Unsent)
	// The one message sent arrived, but its acknowledgement may have been
	// cut off by the close: it is at most "fate unknown".
	require.LessOrEqual(t, u.Unacked, 1)
	require.NoError(t, a.TaskManager(ep.Address()).CancelTask(CancelTask{JobID: "job-1"}))
	u = nextEvent(t, events)
	require.Equal(t, ep.Address(), u.Address)
	require.Equal(t, 1, u.Unsent+u.Unacked)

	// Only the endpoint goes; its process stays.
	c, _ := newTestNetwork(t, NetworkOptions{})
	jm, err := c.Listen("jobmaster/job-1")
	require.NoError(t, err)
	require.NoError(t, a.JobMaster(jm.Address()).CancelJob(CancelJob{JobID: "job-1"}))
	collect(t, jm, 1)
	jm.Close()
	u = nextEvent(t, events)
	require.Equal(t, jm.Address(), u.Address)
	require.ErrorIs(t, u.Err, ErrEndpointClosed)
	require.Empty(t, events)
}

// Messages far larger than a batch — a DeployTask restoring a wide job,
// an ack with megabytes of inline state — arrive whole, in order with the
// small ones; one larger than MaxMessageBytes is dropped alone.
func TestNetworkCarriesLargeMessages(t *testing.T) {
	a, events := newTestNetwork(t, NetworkOptions{MaxMessageBytes: 32 << 20})
	b, _ := newTestNetwork(t, NetworkOptions{MaxMessageBytes: 32 << 20})
	jmEP, err := b.Listen("jobmaster/job-1")
	require.NoError(t, err)
	tmEP, err := b.Listen("taskmanager/tm-1")
	require.NoError(t, err)

	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i)
	}
	ack := AcknowledgeCheckpoint{JobID: "job-1", Execution: exec, CheckpointID: 7, SyncPause: time.Millisecond,
		States: []checkpoint.OperatorSnapshot{{UID: "uid", State: checkpoint.SubtaskState{Subtask: 1,
			Keyed: []checkpoint.StateHandle{{Path: "p", Size: int64(len(big)), Inline: big}}, Watermark: 5}}}}
	var subtasks []checkpoint.SubtaskState
	for i := range 4096 {
		h := checkpoint.StateHandle{Path: fmt.Sprintf("job-1/chk-7/uid/%d-keyed", i), Size: 1 << 20, Shared: true}
		subtasks = append(subtasks, checkpoint.SubtaskState{Subtask: i, Keyed: []checkpoint.StateHandle{h, h}, Operator: []checkpoint.StateHandle{h}})
	}
	deploy := DeployTask{JobID: "job-1", Execution: exec, Slot: slot, JobMaster: jmEP.Address(), Restore: &RestoreHandles{CheckpointID: 7,
		Operators: []checkpoint.OperatorState{{UID: "uid", Name: "Map", Parallelism: 4096, MaxParallelism: 4096, Subtasks: subtasks}}}}
	tooBig := AcknowledgeCheckpoint{JobID: "job-1", CheckpointID: 8, States: []checkpoint.OperatorSnapshot{{UID: "uid",
		State: checkpoint.SubtaskState{Keyed: []checkpoint.StateHandle{{Inline: make([]byte, 33<<20)}}}}}}

	jm, tm := a.JobMaster(jmEP.Address()), a.TaskManager(tmEP.Address())
	require.NoError(t, jm.CancelJob(CancelJob{JobID: "before"}))
	require.NoError(t, jm.AcknowledgeCheckpoint(ack))
	require.NoError(t, jm.AcknowledgeCheckpoint(tooBig))
	require.NoError(t, jm.CancelJob(CancelJob{JobID: "after"}))
	require.NoError(t, tm.DeployTask(deploy))

	got := collect(t, jmEP, 3)
	require.Equal(t, CancelJob{JobID: "before"}, got[0])
	require.True(t, reflect.DeepEqual(ack, got[1]), "the 3 MiB ack arrives intact")
	require.Equal(t, CancelJob{JobID: "after"}, got[2])
	require.True(t, reflect.DeepEqual(deploy, collect(t, tmEP, 1)[0]), "the deployment with 4096 subtasks' handles arrives intact")
	require.Empty(t, events, "an oversized message is the sender's fault, not the destination's")
}

// Close leaves nothing: the port is free again, every goroutine ended
// (TestMain's goleak), and sends and listens fail.
func TestNetworkCloseFreesEverything(t *testing.T) {
	a, err := NewNetwork(NetworkOptions{})
	require.NoError(t, err)
	b, events := newTestNetwork(t, NetworkOptions{})
	ep, err := a.Listen(a.Addr() + "/dispatcher") // the full address works too
	require.NoError(t, err)
	require.Equal(t, a.Addr()+"/dispatcher", ep.Address())
	_, err = a.Listen("127.0.0.2:1/dispatcher")
	require.ErrorContains(t, err, "this process is at")

	// A stream each way is open when Close comes.
	require.NoError(t, b.Dispatcher(ep.Address()).JobFinished(JobFinished{JobID: "job-1"}))
	collect(t, ep, 1)
	peerEP, err := b.Listen("resourcemanager")
	require.NoError(t, err)
	require.NoError(t, a.ResourceManager(peerEP.Address()).RegisterTaskManager(RegisterTaskManager{TaskManager: "tm-1"}))
	collect(t, peerEP, 1)

	require.NoError(t, a.Close())
	require.NoError(t, a.Close(), "Close is idempotent")
	ln, err := net.Listen("tcp", a.Addr())
	require.NoError(t, err, "the port is free")
	require.NoError(t, ln.Close())
	require.ErrorIs(t, a.Dispatcher(ep.Address()).JobFinished(JobFinished{}), ErrUnreachable)
	_, err = a.Listen("dispatcher")
	require.ErrorContains(t, err, "closed")
	u := nextEvent(t, events)
	require.Equal(t, ep.Address(), u.Address, "the other process sees its stream to the closed one end")
}

// The conformance the in-process transport meets, met by the network one:
// an address in use is refused, a send never waits for the receiver, and
// what one sender sends arrives complete and in order.
func TestTransportConformance(t *testing.T) {
	t.Run("Local", func(t *testing.T) {
		l := NewLocal()
		testConformance(t, l, l)
	})
	t.Run("Network", func(t *testing.T) {
		recv, _ := newTestNetwork(t, NetworkOptions{})
		send, _ := newTestNetwork(t, NetworkOptions{})
		testConformance(t, recv, send)
	})
	t.Run("NetworkToItself", func(t *testing.T) {
		// Roles in one process still go through the wire form.
		n, _ := newTestNetwork(t, NetworkOptions{})
		testConformance(t, n, n)
	})
}

// Roles that name each other by bare names, as over Local, reach each
// other in one process; the full address reaches the same endpoint.
func TestNetworkBareNamesAreThisProcess(t *testing.T) {
	n, events := newTestNetwork(t, NetworkOptions{})
	ep, err := n.Listen("resourcemanager")
	require.NoError(t, err)
	rm := n.ResourceManager("resourcemanager")
	require.NoError(t, rm.RegisterTaskManager(RegisterTaskManager{TaskManager: "tm-1", Address: "taskmanager-tm-1", Slots: 1}))
	require.NoError(t, n.ResourceManager(ep.Address()).RequestSlots(RequestSlots{JobID: "job-1", N: 1}))
	// Two spellings are two destinations to the sender, each with its own
	// stream: no order between them.
	require.ElementsMatch(t, []Message{RegisterTaskManager{TaskManager: "tm-1", Address: "taskmanager-tm-1", Slots: 1},
		RequestSlots{JobID: "job-1", N: 1}}, collect(t, ep, 2))
	require.Empty(t, events)
}

func testConformance(t *testing.T, recv, send Transport) {
	ep, err := recv.Listen("taskmanager/tm-1")
	require.NoError(t, err)
	_, err = recv.Listen("taskmanager/tm-1")
	require.ErrorContains(t, err, "in use")

	tm := send.TaskManager(ep.Address())
	for i := range 1000 { // far more than any buffer: nobody reads yet
		require.NoError(t, tm.CancelTask(CancelTask{JobID: "j", Execution: scheduler.ExecutionID{Subtask: i}}))
		if i == 0 {
			require.NoError(t, tm.DeployTask(DeployTask{JobID: "first"}))
		}
	}
	got := collect(t, ep, 1001)
	require.Equal(t, CancelTask{JobID: "j"}, got[0])
	require.Equal(t, DeployTask{JobID: "first"}, got[1])
	for i, m := range got[2:] {
		require.Equal(t, i+1, m.(CancelTask).Execution.Subtask)
	}
	require.Empty(t, ep.Receive())
	ep.Close()
	ep, err = recv.Listen("taskmanager/tm-1") // the address is free again
	require.NoError(t, err)
	ep.Close()
}

// BenchmarkNetworkMessages measures messages per second from one process
// to another, the receiver draining as a role's loop does.
func BenchmarkNetworkMessages(b *testing.B) {
	recv, err := NewNetwork(NetworkOptions{})
	require.NoError(b, err)
	defer recv.Close()
	send, err := NewNetwork(NetworkOptions{})
	require.NoError(b, err)
	defer send.Close()
	ep, err := recv.Listen("jobmaster/job-1")
	require.NoError(b, err)
	jm := send.JobMaster(ep.Address())
	m := TaskStateUpdate{JobID: "job-1", Execution: exec, State: scheduler.Running, Metrics: []OperatorMetrics{opMetrics}}

	b.ResetTimer()
	start := time.Now()
	done := make(chan int)
	go func() {
		n := 0
		for n < b.N {
			<-ep.Ready()
			n += len(ep.Receive())
		}
		done <- n
	}()
	for range b.N {
		if err := jm.UpdateTaskState(m); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// stuckService accepts Deliver streams, answers once (so the stream is
// established, its response under way) and then never reads, as a frozen
// process would: HTTP/2 flow control soon blocks its senders.
type stuckService struct {
	rpcpbconnect.UnimplementedEndpointServiceHandler
}

func (stuckService) Deliver(ctx context.Context, stream *connect.BidiStream[rpcpb.DeliverRequest, rpcpb.DeliverResponse]) error {
	if err := stream.Send(&rpcpb.DeliverResponse{}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// Close returns even while a destination's goroutine is blocked writing
// to a receiver that does not read.
func TestNetworkCloseDoesNotWaitForAStuckReceiver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	mux := http.NewServeMux()
	mux.Handle(rpcpbconnect.NewEndpointServiceHandler(stuckService{}))
	srv := &http.Server{Handler: mux, Protocols: h2c, ReadHeaderTimeout: time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	defer func() {
		require.NoError(t, srv.Close())
		<-served
	}()

	a, err := NewNetwork(NetworkOptions{})
	require.NoError(t, err)
	jm := a.JobMaster(ln.Addr().String() + "/jobmaster/job-1")
	inline := make([]byte, 1<<20)
	for range 32 { // far beyond the stream's flow-control window
		require.NoError(t, jm.AcknowledgeCheckpoint(AcknowledgeCheckpoint{JobID: "job-1",
			States: []checkpoint.OperatorSnapshot{{State: checkpoint.SubtaskState{Keyed: []checkpoint.StateHandle{{Inline: inline}}}}}}))
	}
	time.Sleep(200 * time.Millisecond) // let the writes block
	closed := make(chan error)
	go func() { closed <- a.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("Close hangs on a receiver that does not read")
	}
}

// cuttingDialer keeps the connections it opens, so a test can cut them
// as a network fault would, with both processes alive.
type cuttingDialer struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (d *cuttingDialer) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

func (d *cuttingDialer) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		_ = c.Close()
	}
	d.conns = nil
}

// A connection lost under an idle stream is reported at once; the next
// send connects again and is delivered, in order after what came before.
func TestNetworkReconnectsAfterALostConnection(t *testing.T) {
	var d cuttingDialer
	a, events := newTestNetwork(t, NetworkOptions{Dial: d.Dial})
	b, _ := newTestNetwork(t, NetworkOptions{})
	ep, err := b.Listen("jobmaster/job-1")
	require.NoError(t, err)
	jm := a.JobMaster(ep.Address())

	require.NoError(t, jm.CancelJob(CancelJob{JobID: "first"}))
	require.Equal(t, []Message{CancelJob{JobID: "first"}}, collect(t, ep, 1))
	d.cut()
	u := nextEvent(t, events)
	require.Equal(t, ep.Address(), u.Address)
	require.ErrorIs(t, u.Err, ErrUnreachable)
	require.Zero(t, u.Unsent)

	require.NoError(t, jm.CancelJob(CancelJob{JobID: "second"}))
	require.NoError(t, jm.CancelJob(CancelJob{JobID: "third"}))
	require.Equal(t, []Message{CancelJob{JobID: "second"}, CancelJob{JobID: "third"}}, collect(t, ep, 2))
	require.Empty(t, events)
}

// Connections cut again and again while messages flow: what arrives comes
// in order, without duplicates, and every message that does not arrive is
// counted in an Unreachable (the accounting the owner relies on).
func TestNetworkAccountsForEveryMessageWhenConnectionsAreCut(t *testing.T) {
	const total = 3000
	var d cuttingDialer
	a, events := newTestNetwork(t, NetworkOptions{Dial: d.Dial, MaxBatchBytes: 256})
	b, _ := newTestNetwork(t, NetworkOptions{})
	ep, err := b.Listen("jobmaster/job-1")
	require.NoError(t, err)

	stop := make(chan struct{})
	cutter := make(chan struct{})
	go func() {
		defer close(cutter)
		for {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
				d.cut()
			}
		}
	}()
	jm := a.JobMaster(ep.Address())
	for i := range total {
		require.NoError(t, jm.EndOfInput(TaskEndOfInput{JobID: "job-1", Execution: scheduler.ExecutionID{Subtask: i}}))
		if i%100 == 0 {
			time.Sleep(time.Millisecond) // let cuts land between sends
		}
	}
	close(stop)
	<-cutter

	received, counted, losses, last := 0, 0, 0, -1
	deadline := time.After(waitFor)
	for received+counted < total {
		select {
		case <-ep.Ready():
			for _, m := range ep.Receive() {
				i := m.(TaskEndOfInput).Execution.Subtask
				require.Greater(t, i, last, "out of order or duplicated")
				last = i
				received++
			}
		case u := <-events:
			losses++
			counted += u.Unsent + u.Unacked
		case <-deadline:
			t.Fatalf("received %d, counted lost %d, of %d sent", received, counted, total)
		}
	}
	t.Logf("%d received, %d losses reporting %d messages", received, losses, counted)
	require.Positive(t, losses, "the cuts were seen")
}
