package checkpoint

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/blob"
)

// The tests use goleak per test rather than in TestMain so that this file
// and the coordinator's tests can each stand alone in the package.

const job = "job1"

func openStorage(t *testing.T, u string) blob.Store {
	t.Helper()
	s, err := blob.Open(context.Background(), u)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// discardErrs collects what a store reports to OnDiscardError.
type discardErrs struct {
	mu   sync.Mutex
	errs []error
}

func (d *discardErrs) add(err error) { d.mu.Lock(); d.errs = append(d.errs, err); d.mu.Unlock() }

// recovered returns a recovered store over storage: what a JobMaster gets
// at (re)start.
func recovered(t *testing.T, storage blob.Store, retain int) (*CompletedStore, []RetainedCheckpoint, *discardErrs) {
	t.Helper()
	d := &discardErrs{}
	s, err := NewCompletedStore(storage, job, StoreOptions{Retained: retain, OnDiscardError: d.add})
	require.NoError(t, err)
	rcs, err := s.Recover(context.Background())
	require.NoError(t, err)
	return s, rcs, d
}

// snapshot writes the state files of a checkpoint the way tasks would —
// one own file plus the given shared ones — and returns its metadata.
func snapshot(t *testing.T, storage blob.Store, kind Kind, id ID, shared ...string) *Metadata {
	t.Helper()
	ctx := context.Background()
	own := CheckpointDir(job, kind, id) + "op-0"
	require.NoError(t, storage.Write(ctx, own, []byte("state"), blob.WriteOptions{}))
	handles := []StateHandle{{Path: own, Size: 5}}
	for _, name := range shared {
		p := SharedDir(job) + name
		// Incremental backends upload a shared file once and refer to
		// it again later; writing it again is harmless here.
		require.NoError(t, storage.Write(ctx, p, []byte(name), blob.WriteOptions{}))
		handles = append(handles, StateHandle{Path: p, Size: int64(len(name)), Shared: true})
	}
	t0 := time.Date(2026, 11, 30, 12, 0, int(id), 0, time.UTC)
	return &Metadata{
		JobID: job, ID: id, Kind: kind, Triggered: t0, Completed: t0.Add(time.Second),
		Operators: []OperatorState{{UID: "op", Name: "Op", Parallelism: 1, MaxParallelism: 128,
			Subtasks: []SubtaskState{{Subtask: 0, Keyed: handles}}}},
	}
}

func keys(t *testing.T, storage blob.Store) []string {
	t.Helper()
	objs, err := storage.List(context.Background(), job+"/")
	require.NoError(t, err)
	var out []string
	for _, o := range objs {
		out = append(out, strings.TrimPrefix(o.Key, job+"/"))
	}
	return out
}

func ids(rcs []RetainedCheckpoint) []ID {
	var out []ID
	for _, rc := range rcs {
		out = append(out, rc.ID)
	}
	return out
}

func TestStoreRoundTrip(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, u := range []string{"mem://", "file://" + filepath.Join(t.TempDir(), "ckpt")} {
		t.Run(strings.SplitN(u, ":", 2)[0], func(t *testing.T) {
			ctx := context.Background()
			storage := openStorage(t, u)
			s, rcs, _ := recovered(t, storage, 1)
			require.Empty(t, rcs)
			_, ok := s.Latest()
			require.False(t, ok)

			md := snapshot(t, storage, KindCheckpoint, 1, "sst-1")
			require.NoError(t, s.Add(ctx, md))
			latest, ok := s.Latest()
			require.True(t, ok)
			require.Equal(t, md, latest.Metadata)

			// A restarted JobMaster finds it.
			_, rcs, d := recovered(t, storage, 1)
			require.Len(t, rcs, 1)
			require.NoError(t, rcs[0].Err)
			require.Equal(t, md, rcs[0].Metadata)
			require.Equal(t, MetadataKey(job, KindCheckpoint, 1), rcs[0].MetadataKey)
			require.False(t, rcs[0].Notified)
			require.Empty(t, d.errs)
			require.Equal(t, []string{"chk-1/_metadata", "chk-1/op-0", "retained/chk-1", "shared/sst-1"}, keys(t, storage))
		})
	}
}

func TestStoreRetention(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, retain := range []int{1, 3} {
		t.Run(fmt.Sprint(retain), func(t *testing.T) {
			ctx := context.Background()
			storage := openStorage(t, "mem://")
			s, _, d := recovered(t, storage, retain)
			for id := ID(1); id <= 5; id++ {
				require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, id)))
				var want []string
				var wantIDs []ID
				for k := id; k > max(0, id-ID(retain)); k-- {
					wantIDs = append(wantIDs, k)
				}
				for _, k := range slices.Backward(wantIDs) {
					want = append(want, fmt.Sprintf("chk-%d/_metadata", k), fmt.Sprintf("chk-%d/op-0", k))
				}
				for _, k := range slices.Backward(wantIDs) {
					want = append(want, fmt.Sprintf("retained/chk-%d", k))
				}
				require.Equal(t, want, keys(t, storage), "after adding %d", id)
				require.Equal(t, wantIDs, ids(s.Retained()))
			}
			require.Empty(t, d.errs)

			_, rcs, _ := recovered(t, storage, retain)
			require.Len(t, rcs, retain)
			require.Equal(t, ID(5), rcs[0].ID, "newest first")
		})
	}
}

func TestStoreSharedFiles(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	storage := openStorage(t, "mem://")
	s, _, d := recovered(t, storage, 2)
	exists := func(name string) bool {
		ok, err := storage.Exists(ctx, SharedDir(job)+name)
		require.NoError(t, err)
		return ok
	}

	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 1, "a", "b")))
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 2, "b", "c")))
	require.Equal(t, 2, s.SharedRefs(SharedDir(job)+"b"))
	// 3 subsumes 1: a goes, b stays (2 uses it).
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 3, "c", "d")))
	require.False(t, exists("a"))
	require.True(t, exists("b"))
	require.Equal(t, 1, s.SharedRefs(SharedDir(job)+"b"))
	require.Equal(t, 2, s.SharedRefs(SharedDir(job)+"c"))

	// The counts come back from the retained metadata after a restart.
	s, _, d = recovered(t, storage, 2)
	require.Equal(t, 1, s.SharedRefs(SharedDir(job)+"b"))
	require.Equal(t, 2, s.SharedRefs(SharedDir(job)+"c"))
	require.Equal(t, 1, s.SharedRefs(SharedDir(job)+"d"))

	// 4 subsumes 2, the last user of b.
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 4, "c")))
	require.False(t, exists("b"))
	require.True(t, exists("c"))
	require.True(t, exists("d"), "3 is still retained")
	require.Empty(t, d.errs)

	// An aborted checkpoint's discard keeps what retained ones use.
	aborted := snapshot(t, storage, KindCheckpoint, 5, "c", "e")
	s.Discard(ctx, aborted)
	require.True(t, exists("c"))
	require.False(t, exists("e"))
	require.NotContains(t, keys(t, storage), "chk-5/op-0")

	// A retained checkpoint is not discarded.
	retained, _ := s.Latest()
	s.Discard(ctx, retained.Metadata)
	require.Len(t, d.errs, 1)
	require.ErrorContains(t, d.errs[0], "retained")
	require.Contains(t, keys(t, storage), "chk-4/op-0")
}

// A write that fails half way — the metadata, or the pointer after it —
// leaves no visible checkpoint, and the previous one stays latest, also
// after a restart.
func TestStoreFailedAdd(t *testing.T) {
	defer goleak.VerifyNone(t)
	for name, fault := range map[string]blob.Fault{
		"metadata half written": {Op: blob.OpWrite, Match: blob.KeySuffix("chk-2/_metadata"), Tear: true, Keep: 10, Err: blob.ErrInjected},
		"metadata torn":         {Op: blob.OpWrite, Match: blob.KeySuffix("chk-2/_metadata"), Tear: true, Keep: 30},
		"pointer fails":         {Op: blob.OpWrite, Match: blob.KeySuffix("retained/chk-2")},
		"read back fails":       {Op: blob.OpRead, Match: blob.KeySuffix("chk-2/_metadata")},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			storage := blob.NewFaulty(openStorage(t, "mem://"))
			s, _, _ := recovered(t, storage, 1)
			require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 1, "a")))

			storage.Inject(fault)
			md2 := snapshot(t, storage, KindCheckpoint, 2, "a", "b")
			err := s.Add(ctx, md2)
			require.Error(t, err)
			require.ErrorContains(t, err, "CHECKPOINT 2")
			if fault.Tear && fault.Err == nil {
				require.ErrorIs(t, err, ErrCorruptMetadata, "the read back catches a torn write")
			}
			latest, _ := s.Latest()
			require.Equal(t, ID(1), latest.ID)
			require.NotContains(t, keys(t, storage), "chk-2/_metadata")
			require.NotContains(t, keys(t, storage), "retained/chk-2")
			storage.Clear()

			// The crash comes before the coordinator can Discard: the
			// restart finds only 1, and deletes what 2 left.
			s, rcs, _ := recovered(t, storage, 1)
			require.Equal(t, []ID{1}, ids(rcs))
			require.Equal(t, []string{"chk-1/_metadata", "chk-1/op-0", "retained/chk-1", "shared/a"}, keys(t, storage))
			require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 2, "a")), "id 2 can be taken again")
		})
	}
}

func TestStoreOrphans(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	storage := openStorage(t, "mem://")
	s, _, _ := recovered(t, storage, 1)
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 3, "a")))

	// What crashes leave: a checkpoint that never got its pointer (even
	// with its metadata written), one that was being deleted, a shared
	// file uploaded for a checkpoint that never completed. A savepoint
	// without pointer is the user's and stays.
	md4 := snapshot(t, storage, KindCheckpoint, 4, "a", "new")
	data, err := EncodeMetadata(md4)
	require.NoError(t, err)
	require.NoError(t, storage.Write(ctx, MetadataKey(job, KindCheckpoint, 4), data, blob.WriteOptions{}))
	require.NoError(t, storage.Write(ctx, CheckpointDir(job, KindCheckpoint, 2)+"op-7", []byte("x"), blob.WriteOptions{}))
	snapshot(t, storage, KindSavepoint, 1)
	require.NoError(t, storage.Write(ctx, job+"/chk-notanumber/x", []byte("x"), blob.WriteOptions{}))

	_, rcs, d := recovered(t, storage, 1)
	require.Equal(t, []ID{3}, ids(rcs))
	require.Empty(t, d.errs)
	require.Equal(t, []string{
		"chk-3/_metadata", "chk-3/op-0", "chk-notanumber/x", "retained/chk-3", "savepoint-1/op-0", "shared/a",
	}, keys(t, storage))
}

// A metadata file torn after it was published (a file system without fsync
// losing power) is found by its checksum at Recover and reported, not
// used; the older retained one is intact, and nothing that the torn one
// may reference is deleted.
func TestStoreRecoverTorn(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	storage := openStorage(t, "mem://")
	s, _, _ := recovered(t, storage, 2)
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 1, "a")))
	require.NoError(t, s.MarkNotified(ctx, 1))
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 2, "a", "b")))
	require.NoError(t, storage.Write(ctx, job+"/shared/orphan", nil, blob.WriteOptions{}))

	mkey := MetadataKey(job, KindCheckpoint, 2)
	data, err := storage.Read(ctx, mkey)
	require.NoError(t, err)
	require.NoError(t, storage.Write(ctx, mkey, data[:len(data)/2], blob.WriteOptions{}))

	s, rcs, _ := recovered(t, storage, 2)
	require.Equal(t, []ID{2, 1}, ids(rcs))
	require.ErrorIs(t, rcs[0].Err, ErrCorruptMetadata)
	require.ErrorContains(t, rcs[0].Err, mkey)
	require.Nil(t, rcs[0].Metadata)
	require.False(t, rcs[0].Notified, "so recovery may fall back to 1")
	require.NoError(t, rcs[1].Err)
	require.True(t, rcs[1].Notified)
	latest, _ := s.Latest()
	require.Equal(t, ID(2), latest.ID, "Latest is the newest; its Err tells")
	require.Contains(t, keys(t, storage), "shared/b", "references of a corrupt checkpoint are unknown")
	require.Contains(t, keys(t, storage), "shared/orphan", "so no shared file is collected")

	// A missing metadata file is reported the same way.
	require.NoError(t, storage.Delete(ctx, mkey))
	_, rcs, _ = recovered(t, storage, 2)
	require.ErrorIs(t, rcs[0].Err, blob.ErrNotFound)

	// Subsuming the corrupt one deletes its directory.
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 3)))
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 4)))
	require.Equal(t, []ID{4, 3}, ids(s.Retained()))
	for _, k := range keys(t, storage) {
		require.False(t, strings.HasPrefix(k, "chk-2/"), k)
	}
}

func TestStoreRecoverStorageFails(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	storage := blob.NewFaulty(openStorage(t, "mem://"))
	s, _, _ := recovered(t, storage, 1)
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 1)))

	// An unreadable file is not a corrupt one: Recover cannot decide and
	// says so.
	storage.Inject(blob.Fault{Op: blob.OpRead, Match: blob.KeySuffix("_metadata")})
	s2, err := NewCompletedStore(storage, job, StoreOptions{})
	require.NoError(t, err)
	_, err = s2.Recover(ctx)
	require.ErrorIs(t, err, blob.ErrInjected)
	require.ErrorContains(t, err, "job1/chk-1/_metadata")
	require.ErrorContains(t, s2.Add(ctx, snapshot(t, storage, KindCheckpoint, 2)), "before Recover")
}

func TestStoreSavepoints(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	storage := openStorage(t, "mem://")
	s, _, _ := recovered(t, storage, 1)
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 1)))
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindSavepoint, 2)))
	latest, _ := s.Latest()
	require.Equal(t, KindSavepoint, latest.Kind, "a savepoint is a restore point too")
	require.NoError(t, s.MarkNotified(ctx, 2))
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 3)))

	require.Equal(t, []string{
		"chk-3/_metadata", "chk-3/op-0", "retained/chk-3",
		"savepoint-2/_metadata", "savepoint-2/_notified", "savepoint-2/op-0",
	}, keys(t, storage), "a subsumed savepoint loses only its pointer")

	// Its metadata stays readable by the same code.
	data, err := storage.Read(ctx, MetadataKey(job, KindSavepoint, 2))
	require.NoError(t, err)
	md, err := DecodeMetadata("sp", data)
	require.NoError(t, err)
	require.Equal(t, KindSavepoint, md.Kind)

	// Recover leaves it alone too.
	_, rcs, _ := recovered(t, storage, 1)
	require.Equal(t, []ID{3}, ids(rcs))
	require.Contains(t, keys(t, storage), "savepoint-2/op-0")

	err = s.Add(ctx, snapshot(t, storage, KindSavepoint, 4, "a"))
	require.ErrorContains(t, err, "self-contained")
}

func TestStoreAddChecks(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	storage := openStorage(t, "mem://")
	_, err := NewCompletedStore(storage, "a/b", StoreOptions{})
	require.Error(t, err)
	s, _, _ := recovered(t, storage, 1)
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 5)))
	require.ErrorContains(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 5)), "not newer")
	other := snapshot(t, storage, KindCheckpoint, 6)
	other.JobID = "job2"
	require.ErrorContains(t, s.Add(ctx, other), "of job job2")
	require.ErrorContains(t, s.MarkNotified(ctx, 4), "not retained")
}

// Subsumed files that cannot be deleted are reported, do not fail Add, and
// are found again at the next Recover; a pointer that cannot be deleted
// keeps its checkpoint retained until the next Add.
func TestStoreDiscardErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	storage := blob.NewFaulty(openStorage(t, "mem://"))
	s, _, d := recovered(t, storage, 1)
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 1, "a")))

	storage.Inject(blob.Fault{Op: blob.OpDelete, Match: blob.KeyContains("retained/chk-1"), Nth: 1})
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 2)))
	require.Len(t, d.errs, 1)
	require.Equal(t, []ID{2, 1}, ids(s.Retained()))
	require.Contains(t, keys(t, storage), "shared/a", "1 still holds it")

	storage.Inject(blob.Fault{Op: blob.OpDelete, Match: blob.KeyContains("chk-1/")})
	require.NoError(t, s.Add(ctx, snapshot(t, storage, KindCheckpoint, 3)))
	require.Equal(t, []ID{3}, ids(s.Retained()))
	require.NotContains(t, keys(t, storage), "shared/a")
	require.Contains(t, keys(t, storage), "chk-1/op-0")
	require.Greater(t, len(d.errs), 1)

	storage.Clear()
	_, _, _ = recovered(t, storage, 1)
	for _, k := range keys(t, storage) {
		require.False(t, strings.HasPrefix(k, "chk-1/") || strings.HasPrefix(k, "chk-2/"), k)
	}
}
