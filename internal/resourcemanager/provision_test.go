package resourcemanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/heartbeat"
	"github.com/strom-dev/strom/internal/resourcemanager/provider"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// fakeProvider records the ResourceManager's Request and Release calls
// and lets a test emit the provider's events. Its workers are w-1, w-2,
// ... and start nothing: the test registers their TaskManagers.
type fakeProvider struct {
	asks     chan ask
	releases chan provider.WorkerID
	ready    chan struct{}

	mu     sync.Mutex
	next   int
	fail   error // Request starts none and returns it, while set
	events []provider.Event
}

type ask struct {
	n, slots int
	ids      []provider.WorkerID
	at       time.Time
}

func newFakeProvider() *fakeProvider {
	return &fakeProvider{asks: make(chan ask, 100), releases: make(chan provider.WorkerID, 100), ready: make(chan struct{}, 1)}
}

var _ provider.Provider = (*fakeProvider)(nil)

func (p *fakeProvider) Request(_ context.Context, n, slots int) ([]provider.WorkerID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := ask{n: n, slots: slots, at: time.Now()}
	if p.fail == nil {
		for range n {
			p.next++
			a.ids = append(a.ids, provider.WorkerID(fmt.Sprintf("w-%d", p.next)))
		}
	}
	p.asks <- a
	if p.fail != nil {
		return nil, p.fail
	}
	return a.ids, nil
}

func (p *fakeProvider) Release(_ context.Context, id provider.WorkerID) error {
	p.releases <- id
	return nil
}

func (p *fakeProvider) Ready() <-chan struct{} { return p.ready }

func (p *fakeProvider) Events() []provider.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.events
	p.events = nil
	return e
}

func (p *fakeProvider) Close() error { return nil }

func (p *fakeProvider) emit(e ...provider.Event) {
	p.mu.Lock()
	p.events = append(p.events, e...)
	p.mu.Unlock()
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

func (p *fakeProvider) setFail(err error) {
	p.mu.Lock()
	p.fail = err
	p.mu.Unlock()
}

// nextAsk is the ResourceManager's next Request to p.
func (p *fakeProvider) nextAsk(t *testing.T) ask {
	t.Helper()
	select {
	case a := <-p.asks:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("the resource manager asked the provider for nothing")
		return ask{}
	}
}

// noAsk checks that the ResourceManager asks p for nothing for a while.
func (p *fakeProvider) noAsk(t *testing.T, wait time.Duration) {
	t.Helper()
	select {
	case a := <-p.asks:
		t.Fatalf("unexpected request to the provider: %d workers of %d slots", a.n, a.slots)
	case <-time.After(wait):
	}
}

// records keeps the log records at Warn and above.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (r *records) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	r.mu.Lock()
	r.msgs = append(r.msgs, b.String())
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) warnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// provisioned is a running ResourceManager with a fake provider, a
// stand-in JobMaster at "jm", and its log's warnings.
type provisioned struct {
	rm   *ResourceManager
	gw   rpc.ResourceManagerGateway
	net  *rpc.Local
	jm   rpc.Endpoint
	prov *fakeProvider
	logs *records
}

func startProvisioned(t *testing.T, cfg Config) *provisioned {
	t.Helper()
	p := &provisioned{net: rpc.NewLocal(), prov: newFakeProvider(), logs: &records{}}
	cfg.Provider = p.prov
	p.rm = run(t, p.net, cfg, slog.New(p.logs))
	p.gw = p.net.ResourceManager(p.rm.Address())
	jm, err := p.net.Listen("jm")
	require.NoError(t, err)
	t.Cleanup(jm.Close)
	p.jm = jm
	return p
}

// register registers TaskManager id with slots slots at
// "taskmanager-<id>", an endpoint that never answers.
func (p *provisioned) register(t *testing.T, id string, slots int) {
	t.Helper()
	addr := "taskmanager-" + id
	if ep, err := p.net.Listen(addr); err == nil {
		t.Cleanup(ep.Close)
	}
	require.NoError(t, p.gw.RegisterTaskManager(rpc.RegisterTaskManager{TaskManager: id, Address: addr, Slots: slots}))
}

func (p *provisioned) request(t *testing.T, job string, n int) {
	t.Helper()
	require.NoError(t, p.gw.RequestSlots(rpc.RequestSlots{JobID: job, RequestID: 1, N: n, JobMaster: "jm"}))
}

// nextN is the stand-in JobMaster's next n messages.
func nextN(t *testing.T, ep rpc.Endpoint, n int) []rpc.Message {
	t.Helper()
	var ms []rpc.Message
	for len(ms) < n {
		select {
		case <-ep.Ready():
		case <-time.After(10 * time.Second):
			t.Fatalf("%d answers from the resource manager, want %d", len(ms), n)
		}
		ms = append(ms, ep.Receive()...)
	}
	require.Len(t, ms, n)
	return ms
}

func slot(tm string, i int) rpc.SlotOffer {
	return rpc.SlotOffer{Slot: scheduler.SlotID{TaskManager: tm, Index: i}, Address: "taskmanager-" + tm}
}

func ids(s ...string) []provider.WorkerID {
	out := make([]provider.WorkerID, len(s))
	for i, x := range s {
		out[i] = provider.WorkerID(x)
	}
	return out
}

// Requests short of slots ask the provider for whole workers covering
// the shortfall beyond the free slots and the workers still coming; a
// worker that stops before it registers is asked for again; the workers'
// registrations serve the requests in order, and nothing more is asked.
func TestShortOfSlotsAsksTheProviderOnceForTheShortfall(t *testing.T) {
	p := startProvisioned(t, Config{SlotsPerWorker: 2})
	p.register(t, "tm-1", 1) // started by hand

	p.request(t, "a", 4) // 3 short: 2 workers of 2
	require.Equal(t, ask{n: 2, slots: 2, ids: ids("w-1", "w-2")}, p.prov.nextAsk(t).withoutTime())
	p.request(t, "b", 1) // 4 short, 4 coming
	p.prov.noAsk(t, 50*time.Millisecond)
	p.request(t, "c", 2) // 6 short, 4 coming
	require.Equal(t, ask{n: 1, slots: 2, ids: ids("w-3")}, p.prov.nextAsk(t).withoutTime())

	p.prov.emit(provider.WorkerStarted{Worker: "w-2", PID: 1, Start: 1}, provider.WorkerStopped{Worker: "w-2"})
	require.Equal(t, ask{n: 1, slots: 2, ids: ids("w-4")}, p.prov.nextAsk(t).withoutTime())

	p.register(t, "w-1", 2)
	requireQuiet(t, p.jm) // a needs 4, 3 registered
	p.register(t, "w-3", 2)
	require.Equal(t, []rpc.Message{
		rpc.SlotsGranted{JobID: "a", RequestID: 1, Slots: []rpc.SlotOffer{slot("tm-1", 0), slot("w-1", 0), slot("w-3", 0), slot("w-1", 1)}},
		rpc.SlotsGranted{JobID: "b", RequestID: 1, Slots: []rpc.SlotOffer{slot("w-3", 1)}},
	}, nextN(t, p.jm, 2))
	requireQuiet(t, p.jm) // c waits for w-4, which is coming
	p.prov.noAsk(t, 50*time.Millisecond)

	p.register(t, "w-4", 2)
	require.Equal(t, rpc.SlotsGranted{JobID: "c", RequestID: 1, Slots: []rpc.SlotOffer{slot("w-4", 0), slot("w-4", 1)}}, next(t, p.jm))
	p.prov.noAsk(t, 50*time.Millisecond)
	require.Empty(t, p.logs.warnings())
}

func (a ask) withoutTime() ask { a.at = time.Time{}; return a }

// A provider that cannot start workers is asked again after the retry
// delay, not on every message; the request waits until its own timeout
// and is refused then, and nothing is asked for it any more.
func TestProviderFailureIsLoggedAndTheRequestWaitsItsTimeout(t *testing.T) {
	const retry, timeout = 60 * time.Millisecond, 400 * time.Millisecond
	p := startProvisioned(t, Config{SlotRequestTimeout: timeout, ProviderRetryDelay: retry})
	p.prov.setFail(errors.New("quota exceeded"))
	p.request(t, "a", 1)
	first := p.prov.nextAsk(t)
	require.Equal(t, ask{n: 1, slots: 1}, first.withoutTime())
	second := p.prov.nextAsk(t)
	require.GreaterOrEqual(t, second.at.Sub(first.at), retry)

	require.Equal(t, rpc.SlotsRefused{JobID: "a", RequestID: 1,
		Reason: "no 1 free slots within the slot request timeout of 400ms: the cluster has 0 (0 TaskManagers)"}, next(t, p.jm))
	// At most one ask per retry delay, and none after the refusal.
	for range len(p.prov.asks) {
		<-p.prov.asks
	}
	p.prov.noAsk(t, 3*retry)
	w := p.logs.warnings()
	require.NotEmpty(t, w)
	require.Contains(t, w[0], "the provider did not start all TaskManagers asked for")
	require.Contains(t, w[0], "quota exceeded")
}

// A request refused at once (RefuseAboveCapacity) asks the provider for
// nothing.
func TestRequestRefusedAboveCapacityAsksNothing(t *testing.T) {
	p := startProvisioned(t, Config{RefuseAboveCapacity: true})
	p.register(t, "tm-1", 1)
	p.request(t, "a", 2)
	require.IsType(t, rpc.SlotsRefused{}, next(t, p.jm))
	p.prov.noAsk(t, 50*time.Millisecond)
}

// A provider's TaskManager whose slots were all free for the idle timeout
// is released and its slots leave the table at once: a later request
// asks for a new worker instead of getting them, the released one's late
// registration does not bring them back, and its connection closing is no
// alarm. A busy one and one started by hand are kept.
func TestIdleProviderTaskManagerIsReleased(t *testing.T) {
	const idle = 100 * time.Millisecond
	p := startProvisioned(t, Config{IdleTimeout: idle})
	p.register(t, "tm-1", 1)
	p.request(t, "a", 3)
	require.Equal(t, ids("w-1", "w-2"), p.prov.nextAsk(t).ids)
	p.register(t, "w-1", 1)
	p.register(t, "w-2", 1)
	require.Equal(t, rpc.SlotsGranted{JobID: "a", RequestID: 1, Slots: []rpc.SlotOffer{
		slot("tm-1", 0), slot("w-1", 0), slot("w-2", 0)}}, next(t, p.jm))

	freed := time.Now()
	require.NoError(t, p.gw.ReleaseSlots(rpc.ReleaseSlots{JobID: "a", Slots: []scheduler.SlotID{
		{TaskManager: "tm-1", Index: 0}, {TaskManager: "w-2", Index: 0}}}))
	select {
	case id := <-p.prov.releases:
		require.Equal(t, provider.WorkerID("w-2"), id)
		require.GreaterOrEqual(t, time.Since(freed), idle)
	case <-time.After(10 * time.Second):
		t.Fatal("the idle TaskManager was not released")
	}
	require.Eventually(t, func() bool { return p.rm.RegisteredSlots() == 2 }, 10*time.Second, time.Millisecond, "its slot leaves the table")
	select {
	case id := <-p.prov.releases:
		t.Fatalf("%s released: it is busy or was started by hand", id)
	case <-time.After(3 * idle):
	}

	// It stops: its connection closes.
	p.rm.TaskManagerUnreachable("taskmanager-w-2", "EOF")
	p.register(t, "w-2", 1) // sent before it was told to stop
	p.request(t, "b", 2)    // tm-1's slot and one more
	require.Equal(t, ids("w-3"), p.prov.nextAsk(t).ids)
	requireQuiet(t, p.jm)
	p.prov.emit(provider.WorkerStopped{Worker: "w-2"})
	p.register(t, "w-3", 1)
	require.Equal(t, rpc.SlotsGranted{JobID: "b", RequestID: 1, Slots: []rpc.SlotOffer{slot("tm-1", 0), slot("w-3", 0)}}, next(t, p.jm))
	require.Empty(t, p.logs.warnings(), "a released TaskManager is no alarm")
}

// A negative IdleTimeout releases nothing.
func TestNegativeIdleTimeoutReleasesNothing(t *testing.T) {
	p := startProvisioned(t, Config{IdleTimeout: -1})
	p.request(t, "a", 1)
	require.Equal(t, ids("w-1"), p.prov.nextAsk(t).ids)
	p.register(t, "w-1", 1)
	granted := next(t, p.jm).(rpc.SlotsGranted)
	require.NoError(t, p.gw.ReleaseSlots(rpc.ReleaseSlots{JobID: "a", Slots: []scheduler.SlotID{granted.Slots[0].Slot}}))
	select {
	case id := <-p.prov.releases:
		t.Fatalf("%s released", id)
	case <-time.After(200 * time.Millisecond):
	}
}

// A registered worker the provider reports stopped (it is closing) takes
// its slots with it.
func TestWorkerStoppedByItsProviderTakesItsSlots(t *testing.T) {
	p := startProvisioned(t, Config{})
	p.request(t, "a", 1)
	require.Equal(t, ids("w-1"), p.prov.nextAsk(t).ids)
	p.register(t, "w-1", 1)
	require.IsType(t, rpc.SlotsGranted{}, next(t, p.jm))
	require.Equal(t, 1, p.rm.RegisteredSlots())
	p.prov.emit(provider.WorkerStopped{Worker: "w-1"})
	require.Eventually(t, func() bool { return p.rm.RegisteredSlots() == 0 }, 10*time.Second, 5*time.Millisecond)
}

// A provider's TaskManager dropped by the heartbeat is coming back (its
// provider restarts it, or it wakes up): a request it could serve waits
// for it instead of asking for another worker, and gets it when it
// registers again.
func TestDroppedWorkerIsAwaitedNotAskedForAgain(t *testing.T) {
	p := startProvisioned(t, Config{Heartbeat: heartbeat.Config{Interval: 10 * time.Millisecond, Timeout: 50 * time.Millisecond}})
	p.request(t, "a", 1)
	require.Equal(t, ids("w-1"), p.prov.nextAsk(t).ids)
	p.register(t, "w-1", 1)
	granted := next(t, p.jm).(rpc.SlotsGranted)
	require.NoError(t, p.gw.ReleaseSlots(rpc.ReleaseSlots{JobID: "a", Slots: []scheduler.SlotID{granted.Slots[0].Slot}}))
	require.Eventually(t, func() bool { return p.rm.RegisteredSlots() == 0 }, 10*time.Second, 5*time.Millisecond, "silent: dropped")

	p.request(t, "b", 1)
	p.prov.noAsk(t, 100*time.Millisecond)
	p.register(t, "w-1", 1)
	require.Equal(t, rpc.SlotsGranted{JobID: "b", RequestID: 1, Slots: []rpc.SlotOffer{slot("w-1", 0)}}, next(t, p.jm))
}

// The Standalone provider starts nothing: a request waits, quietly, for a
// TaskManager started by hand, as without a provider.
func TestStandaloneProviderWaitsForTaskManagersStartedByHand(t *testing.T) {
	logs := &records{}
	net := rpc.NewLocal()
	gw, jm := startLogged(t, net, Config{Provider: provider.Standalone{}, ProviderRetryDelay: 10 * time.Millisecond}, slog.New(logs))
	require.NoError(t, gw.RequestSlots(rpc.RequestSlots{JobID: "a", RequestID: 1, N: 1, JobMaster: "jm"}))
	time.Sleep(50 * time.Millisecond) // a few retries
	requireQuiet(t, jm)
	tm, err := net.Listen("taskmanager-tm-1")
	require.NoError(t, err)
	t.Cleanup(tm.Close)
	require.NoError(t, gw.RegisterTaskManager(rpc.RegisterTaskManager{TaskManager: "tm-1", Address: "taskmanager-tm-1", Slots: 1}))
	require.Equal(t, rpc.SlotsGranted{JobID: "a", RequestID: 1, Slots: []rpc.SlotOffer{slot("tm-1", 0)}}, next(t, jm))
	require.Empty(t, logs.warnings())
}

func TestProviderSettingsAreChecked(t *testing.T) {
	for _, cfg := range []Config{{SlotsPerWorker: -1}, {ProviderRetryDelay: -time.Second}} {
		_, err := NewWithConfig(rpc.NewLocal(), "rm", nil, cfg)
		require.ErrorContains(t, err, "negative")
	}
	rm, err := NewWithConfig(rpc.NewLocal(), "rm", nil, Config{Provider: provider.Standalone{}})
	require.NoError(t, err)
	defer rm.ep.Close()
	require.Equal(t, 1, rm.cfg.SlotsPerWorker)
	require.Equal(t, DefaultIdleTimeout, rm.cfg.IdleTimeout)
	require.Equal(t, DefaultProviderRetryDelay, rm.cfg.ProviderRetryDelay)
}

// tmHelperEnv switches the test binary into a stand-in TaskManager; its
// value is the ResourceManager's address.
const tmHelperEnv = "STROM_RM_TEST_TASKMANAGER"

// taskManagerHelper is a stand-in TaskManager process: it registers with
// the ResourceManager at $STROM_RM_TEST_TASKMANAGER under its worker id
// ($STROM_WORKER_ID) with args[0] slots, over the network transport, and
// runs until SIGTERM. It answers no heartbeat (the test's timeout is
// longer than the test).
func taskManagerHelper(args []string) int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "stand-in TaskManager:", err); return 1 }
	if len(args) != 1 {
		return fail(fmt.Errorf("args %v, want [slots]", args))
	}
	slots, err := strconv.Atoi(args[0])
	if err != nil {
		return fail(err)
	}
	id := os.Getenv("STROM_WORKER_ID")
	net, err := rpc.NewNetwork(rpc.NetworkOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fail(err)
	}
	defer net.Close()
	ep, err := net.Listen("taskmanager/" + id)
	if err != nil {
		return fail(err)
	}
	reg := rpc.RegisterTaskManager{TaskManager: id, Address: ep.Address(), Slots: slots}
	if err := net.ResourceManager(os.Getenv(tmHelperEnv)).RegisterTaskManager(reg); err != nil {
		return fail(err)
	}
	fmt.Println("registered", id, slots)
	for {
		select {
		case <-term:
			fmt.Println("terminated")
			return 0
		case <-ep.Ready():
			ep.Receive()
		case <-time.After(2 * time.Minute): // bounded, should a test fail to stop it
			return fail(errors.New("never stopped"))
		}
	}
}

// The real LocalProcesses provider under a ResourceManager on the network
// transport: a request short of slots starts TaskManager processes, which
// register under their worker ids and serve it; once their slots are
// given back they are released, their processes end, and they leave no
// alarm behind.
func TestLocalProcessesStartAndStopTaskManagers(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	var rmp atomic.Pointer[ResourceManager]
	net, err := rpc.NewNetwork(rpc.NetworkOptions{Logger: quiet, OnUnreachable: func(u rpc.Unreachable) {
		if rm := rmp.Load(); rm != nil {
			rm.TaskManagerUnreachable(u.Address, u.Err.Error())
		}
	}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, net.Close()) })
	// The ResourceManager's address is known before it listens.
	rmAddr := net.Addr() + "/rm"

	logDir := t.TempDir()
	lp, err := provider.NewLocalProcesses(provider.LocalConfig{
		Command:   []string{os.Args[0], "{slots}"},
		Env:       []string{tmHelperEnv + "=" + rmAddr},
		LogDir:    logDir,
		StopGrace: 5 * time.Second,
		Logger:    quiet,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, lp.Close()) })

	logs := &records{}
	const idle = 300 * time.Millisecond
	rm := run(t, net, Config{Provider: lp, SlotsPerWorker: 2, IdleTimeout: idle,
		Heartbeat: heartbeat.Config{Interval: time.Second, Timeout: time.Minute}}, slog.New(logs))
	rmp.Store(rm)
	require.Equal(t, rmAddr, rm.Address())
	jm, err := net.Listen("jobmaster/a")
	require.NoError(t, err)
	t.Cleanup(jm.Close)

	gw := net.ResourceManager(rm.Address())
	require.NoError(t, gw.RequestSlots(rpc.RequestSlots{JobID: "a", RequestID: 1, N: 3, JobMaster: jm.Address()}))
	granted, ok := next(t, jm).(rpc.SlotsGranted)
	require.True(t, ok, "granted")
	tm := func(i int) string { return provider.DefaultIDPrefix + strconv.Itoa(i) }
	byTM := map[string][]int{}
	for _, s := range granted.Slots {
		byTM[s.Slot.TaskManager] = append(byTM[s.Slot.TaskManager], s.Slot.Index)
		// Its own process's address.
		require.True(t, strings.HasSuffix(s.Address, "/taskmanager/"+s.Slot.TaskManager), s.Address)
		require.False(t, strings.HasPrefix(s.Address, net.Addr()+"/"), s.Address)
	}
	// Spread over both, in the order they registered.
	require.ElementsMatch(t, []string{tm(1), tm(2)}, slices.Collect(maps.Keys(byTM)))
	require.ElementsMatch(t, [][]int{{0, 1}, {0}}, slices.Collect(maps.Values(byTM)))
	require.Equal(t, 4, rm.RegisteredSlots())

	var slots []scheduler.SlotID
	for _, s := range granted.Slots {
		slots = append(slots, s.Slot)
	}
	require.NoError(t, gw.ReleaseSlots(rpc.ReleaseSlots{JobID: "a", Slots: slots}))
	require.Eventually(t, func() bool { return rm.RegisteredSlots() == 0 }, 10*time.Second, 10*time.Millisecond, "idle TaskManagers released")
	// Their processes end: the provider forgets a worker once it stopped.
	require.Eventually(t, func() bool {
		return errors.Is(lp.Release(t.Context(), provider.WorkerID(tm(1))), provider.ErrUnknownWorker) &&
			errors.Is(lp.Release(t.Context(), provider.WorkerID(tm(2))), provider.ErrUnknownWorker)
	}, 10*time.Second, 10*time.Millisecond, "released workers stopped")
	for i := 1; i <= 2; i++ {
		out, err := os.ReadFile(filepath.Join(logDir, tm(i)+".log"))
		require.NoError(t, err)
		require.Contains(t, string(out), "registered "+tm(i)+" 2\n")
		require.Contains(t, string(out), "terminated\n", "stopped by SIGTERM")
	}
	require.Empty(t, logs.warnings())
}
