package resourcemanager

import (
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
