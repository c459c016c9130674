package dispatcher

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/jobstore"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// started records the JobMasters a Dispatcher starts.
type started struct {
	mu   sync.Mutex
	subs []Submission
}

func (s *started) start(sub Submission, _, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, sub)
	return nil
}

func (s *started) get() []Submission {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Submission(nil), s.subs...)
}

func newDispatcher(t *testing.T, net rpc.Transport, store jobstore.Store, s *started) (*Dispatcher, func()) {
	t.Helper()
	d, err := New(Config{Address: "dispatcher", Transport: net, StartJobMaster: s.start, Store: store, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	return d, func() { cancel(); <-done }
}

func storedIDs(t *testing.T, s jobstore.Store) []string {
	t.Helper()
	l, err := s.List()
	require.NoError(t, err)
	var out []string
	for _, r := range l {
		out = append(out, r.JobID)
	}
	return out
}

// A submitted job is in the store before Submit returns and leaves it
// when its JobMaster reports its end; a Dispatcher killed with a job
// running leaves it there, and the next Dispatcher over the store starts
// it again at once, in recovery mode (incarnation 1, stored before its
// JobMaster starts), listed RESTARTING. The handle the client got from
// the killed Dispatcher follows the job and completes when it ends at
// the new one.
func TestDispatcherRecoversJobsFromTheStore(t *testing.T) {
	net := rpc.NewLocal()
	store := jobstore.NewMemory()
	s1 := &started{}
	d1, stop1 := newDispatcher(t, net, store, s1)
	h1, err := d1.Submit(Submission{JobID: "j1", JobName: "wc", JobGraph: testGraph(), Extra: map[string]string{"binary": "b1"}})
	require.NoError(t, err)
	h2, err := d1.Submit(Submission{JobID: "j2", JobName: "short", JobGraph: testGraph()})
	require.NoError(t, err)
	require.Equal(t, []string{"j1", "j2"}, storedIDs(t, store))
	require.Equal(t, 0, s1.get()[0].Incarnation)

	// j2 ends: terminal, removed.
	require.NoError(t, net.Dispatcher("dispatcher").JobFinished(rpc.JobFinished{JobID: "j2", JobName: "short", State: scheduler.JobFinished}))
	r2, err := h2.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, scheduler.JobFinished, r2.State)
	require.Equal(t, []string{"j1"}, storedIDs(t, store))

	// The JobManager dies: nothing ends, j1 stays stored.
	d1.Kill()
	stop1()
	select {
	case <-h1.Done():
		t.Fatal("a killed Dispatcher ended its job")
	default:
	}
	require.Equal(t, []string{"j1"}, storedIDs(t, store))

	s2 := &started{}
	d2, stop2 := newDispatcher(t, net, store, s2)
	defer stop2()
	subs := s2.get()
	require.Len(t, subs, 1, "the stored job was started again when the Dispatcher was created")
	require.Equal(t, "j1", subs[0].JobID)
	require.Equal(t, 1, subs[0].Incarnation)
	require.Equal(t, "b1", subs[0].Extra["binary"])
	l, err := store.List()
	require.NoError(t, err)
	require.Equal(t, 1, l[0].Incarnation, "the new incarnation is stored before its JobMaster runs")
	h, err := d2.Job("j1")
	require.NoError(t, err)
	st, execs := h.Status()
	require.Equal(t, scheduler.JobRestarting, st)
	require.Len(t, execs, 3)
	for _, e := range execs {
		require.Equal(t, scheduler.AttemptBase(1), e.ID.Attempt)
	}

	forwards := d1.HandOver(d2)
	require.Len(t, forwards, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fwd := make(chan struct{})
	go func() { defer close(fwd); forwards[0](ctx) }()
	st, _ = h1.Status()
	require.Equal(t, scheduler.JobRestarting, st, "the old handle shows the job at the new Dispatcher")

	require.NoError(t, net.Dispatcher("dispatcher").JobFinished(rpc.JobFinished{JobID: "j1", JobName: "wc", State: scheduler.JobFinished, RestoredCheckpoint: 7}))
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	r1, err := h1.Wait(wctx)
	require.NoError(t, err)
	require.Equal(t, scheduler.JobFinished, r1.State)
	require.Equal(t, int64(7), r1.RestoredCheckpoint)
	<-fwd
	require.Empty(t, storedIDs(t, store))
}

// A Dispatcher shut down (not killed) ends its jobs as CANCELED for its
// clients but keeps them in the store: they were not ended by their
// JobMasters, and a Dispatcher started over the store later runs them.
func TestDispatcherShutdownKeepsJobsStored(t *testing.T) {
	net := rpc.NewLocal()
	store := jobstore.NewMemory()
	d, stop := newDispatcher(t, net, store, &started{})
	h, err := d.Submit(Submission{JobID: "j", JobName: "wc", JobGraph: testGraph()})
	require.NoError(t, err)
	stop()
	r, err := h.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, scheduler.JobCanceled, r.State)
	require.Equal(t, []string{"j"}, storedIDs(t, store))
}

// A store that cannot be read fails the Dispatcher, naming the record:
// starting without its jobs would lose them silently.
func TestDispatcherRefusesACorruptStore(t *testing.T) {
	dir := t.TempDir()
	store, err := jobstore.OpenDir(dir)
	require.NoError(t, err)
	bad := filepath.Join(dir, "j.json")
	require.NoError(t, os.WriteFile(bad, []byte("{"), 0o644))
	_, err = New(Config{Address: "dispatcher", Transport: rpc.NewLocal(), StartJobMaster: (&started{}).start, Store: store})
	require.ErrorIs(t, err, jobstore.ErrCorrupt)
	require.ErrorContains(t, err, bad)
}
