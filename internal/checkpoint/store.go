package checkpoint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/strom-dev/strom/internal/blob"
)

// Storage layout of one job (keys relative to the checkpoint storage root;
// StateHandle.Path uses the same keys):
//
//	<job>/chk-<id>/...            state files owned by checkpoint <id>
//	<job>/chk-<id>/_metadata      its metadata file (metadata.go)
//	<job>/chk-<id>/_notified      written once tasks were told it completed
//	<job>/savepoint-<id>/...      the same for a savepoint
//	<job>/shared/...              files several checkpoints may reference
//	                              (StateHandle.Shared), reference-counted
//	<job>/retained/chk-<id>       the pointer that makes checkpoint <id>
//	<job>/retained/savepoint-<id> (or savepoint <id>) visible: retained
//
// Why pointers: a checkpoint consists of many objects written one by one,
// so its directory is half-written for a while, and a crash can leave it
// so. Each single object appears atomically on every driver (see package
// blob), so a checkpoint becomes visible with one write, of its pointer,
// made only after its metadata was written and read back intact; whatever
// a crash leaves without a pointer is an orphan that Recover deletes.
// Deleting goes the other way round: pointer first, then files. The
// pointers are written exclusively where the driver guarantees it, so two
// JobMasters that both believe they lead cannot both publish the same id.

const (
	metadataName = "_metadata"
	notifiedName = "_notified"
	chkPrefix    = "chk-"
	spPrefix     = "savepoint-"
)

// CheckpointDir is the directory (key prefix, ending in '/') holding the
// files owned by one checkpoint or savepoint.
func CheckpointDir(job string, kind Kind, id ID) string {
	return job + "/" + dirName(kind, id) + "/"
}

// SharedDir is the directory of the job's shared (reference-counted) files.
func SharedDir(job string) string { return job + "/shared/" }

// MetadataKey is the key of a checkpoint's or savepoint's metadata file.
func MetadataKey(job string, kind Kind, id ID) string {
	return CheckpointDir(job, kind, id) + metadataName
}

func dirName(kind Kind, id ID) string {
	if kind == KindSavepoint {
		return spPrefix + strconv.FormatInt(int64(id), 10)
	}
	return chkPrefix + strconv.FormatInt(int64(id), 10)
}

// NotifiedKey is the key of the marker MarkNotified writes.
func NotifiedKey(job string, kind Kind, id ID) string {
	return CheckpointDir(job, kind, id) + notifiedName
}

// parseDirName is dirName backwards.
func parseDirName(name string) (Kind, ID, bool) {
	kind, rest := KindCheckpoint, strings.TrimPrefix(name, chkPrefix)
	if rest == name {
		kind, rest = KindSavepoint, strings.TrimPrefix(name, spPrefix)
		if rest == name {
			return 0, 0, false
		}
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != rest {
		return 0, 0, false
	}
	return kind, ID(id), true
}

// StoreOptions configure a CompletedStore.
type StoreOptions struct {
	// Retained is how many completed checkpoints to keep (savepoints
	// count too); older ones are subsumed. Default 1.
	Retained int
	// OnDiscardError hears about files that could not be deleted while
	// subsuming a checkpoint or cleaning up orphans. These never fail
	// the operation — the checkpoint that caused them is safely stored —
	// and what is left over is found again by the next Recover. Default:
	// a warning on slog's default logger.
	OnDiscardError func(error)
}

// EnsureDefaults fills in the zero fields.
func (o *StoreOptions) EnsureDefaults() {
	if o.Retained <= 0 {
		o.Retained = 1
	}
	if o.OnDiscardError == nil {
		o.OnDiscardError = func(err error) { slog.Warn("checkpoint storage cleanup", "err", err) }
	}
}

// RetainedCheckpoint is one retained checkpoint or savepoint as the store
// knows it.
type RetainedCheckpoint struct {
	ID          ID
	Kind        Kind
	MetadataKey string
	// Metadata is nil when Err is set.
	Metadata *Metadata
	// Err says why the metadata could not be loaded at Recover; it wraps
	// ErrCorruptMetadata, ErrUnsupportedVersion or blob.ErrNotFound.
	Err error
	// Notified is true once MarkNotified was called for it: its
	// completion may have been committed by two-phase-commit sinks, so
	// recovery must not fall back past it.
	Notified bool
}

// CompletedStore keeps a job's completed checkpoints in blob storage
// (Flink's CompletedCheckpointStore): it publishes new ones, retains the
// newest few, deletes subsumed ones together with the shared files no
// retained checkpoint references any more, and lists what is retained after
// a restart.
//
// Shared files: a checkpoint's Shared handles are counted per path across
// the retained checkpoints; a file is deleted when its count drops to zero.
// Because a new checkpoint is counted before the one it subsumes is
// released, a file carried over from one checkpoint to the next is never
// deleted. An in-progress checkpoint may only reference shared files the
// newest retained checkpoint references, or new ones: the store does not
// know about checkpoints that were not added yet. Savepoints must not
// reference shared files (they are self-contained, owned by the user).
//
// Recover must be called once before Add. The methods are safe for
// concurrent use but do their I/O under one lock: the store is meant for
// the coordinator's shell, one caller at a time.
type CompletedStore struct {
	storage blob.Store
	job     string
	opts    StoreOptions

	mu        sync.Mutex
	recovered bool
	retained  []*RetainedCheckpoint // newest first
	refs      map[string]int        // shared path → retained checkpoints referencing it
}

// NewCompletedStore returns the store of job's checkpoints in storage. It
// does no I/O.
func NewCompletedStore(storage blob.Store, job string, opts StoreOptions) (*CompletedStore, error) {
	if job == "" || strings.Contains(job, "/") {
		return nil, fmt.Errorf("checkpoint store: job id %q must be non-empty and contain no '/'", job)
	}
	opts.EnsureDefaults()
	return &CompletedStore{storage: storage, job: job, opts: opts, refs: map[string]int{}}, nil
}

func (s *CompletedStore) pointerKey(kind Kind, id ID) string {
	return s.job + "/retained/" + dirName(kind, id)
}

// Recover lists the retained checkpoints in storage, newest first, loading
// each one's metadata and notified marker. A checkpoint whose metadata is
// missing, corrupt or of an unknown version is listed with Err set, not
// dropped: whether recovery may fall back to an older one depends on
// whether the newer one was notified, which the caller decides. Recover
// fails only when storage itself fails (an unreadable listing or file), as
// then nothing can be decided.
//
// It then deletes orphans: checkpoint directories without a pointer (a
// crash before publishing, or in the middle of deleting a subsumed one),
// and — if every retained metadata loaded, so that all references are
// known — shared files no retained checkpoint references. It must
// therefore run before any new checkpoint of the job starts writing.
// Savepoint directories are never deleted.
func (s *CompletedStore) Recover(ctx context.Context) ([]RetainedCheckpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ptrs, err := s.storage.List(ctx, s.job+"/retained/")
	if err != nil {
		return nil, fmt.Errorf("recover checkpoints of job %s: %w", s.job, err)
	}
	var retained []*RetainedCheckpoint
	published := map[string]bool{} // directory names with a pointer
	for _, p := range ptrs {
		name := strings.TrimPrefix(p.Key, s.job+"/retained/")
		kind, id, ok := parseDirName(name)
		if !ok {
			continue // not ours (a driver's temporary file, say)
		}
		published[name] = true
		rc, err := s.load(ctx, kind, id)
		if err != nil {
			return nil, fmt.Errorf("recover checkpoints of job %s: %w", s.job, err)
		}
		retained = append(retained, rc)
	}
	slices.SortFunc(retained, func(a, b *RetainedCheckpoint) int { return cmp.Compare(b.ID, a.ID) })

	s.retained = retained
	s.refs = map[string]int{}
	allLoaded := true
	for _, rc := range retained {
		if rc.Metadata == nil {
			allLoaded = false
			continue
		}
		for p := range sharedPaths(rc.Metadata) {
			s.refs[p]++
		}
	}
	s.recovered = true

	s.deleteOrphanDirs(ctx, published)
	if allLoaded {
		s.deleteUnreferencedShared(ctx)
	}
	return s.snapshot(), nil
}

// load reads one retained checkpoint's metadata and marker. Only storage
// failures are returned as errors; a bad or missing metadata file is
// recorded in the result.
func (s *CompletedStore) load(ctx context.Context, kind Kind, id ID) (*RetainedCheckpoint, error) {
	rc := &RetainedCheckpoint{ID: id, Kind: kind, MetadataKey: MetadataKey(s.job, kind, id)}
	notified, err := s.storage.Exists(ctx, NotifiedKey(s.job, kind, id))
	if err != nil {
		return nil, err
	}
	rc.Notified = notified
	data, err := s.storage.Read(ctx, rc.MetadataKey)
	switch {
	case errors.Is(err, blob.ErrNotFound):
		rc.Err = err
		return rc, nil
	case err != nil:
		return nil, err
	}
	md, err := DecodeMetadata(rc.MetadataKey, data)
	if err == nil && (md.ID != id || md.Kind != kind || md.JobID != s.job) {
		err = fmt.Errorf("%w %s: it describes %s %d of job %s", ErrCorruptMetadata, rc.MetadataKey, md.Kind, md.ID, md.JobID)
	}
	if err != nil {
		rc.Err = err
		return rc, nil
	}
	rc.Metadata = md
	return rc, nil
}

// sharedPaths returns the distinct shared files md references.
func sharedPaths(md *Metadata) map[string]struct{} {
	out := map[string]struct{}{}
	eachHandle(md, func(h StateHandle) {
		if h.Shared && h.Path != "" {
			out[h.Path] = struct{}{}
		}
	})
	return out
}

func eachHandle(md *Metadata, f func(StateHandle)) {
	for _, op := range md.Operators {
		for _, st := range op.Subtasks {
			for _, hs := range [][]StateHandle{st.Keyed, st.Operator, st.Channel} {
				for _, h := range hs {
					f(h)
				}
			}
		}
	}
}

// Add publishes a completed checkpoint or savepoint: it writes its metadata
// file, reads it back, publishes its pointer, and then subsumes the oldest
// retained checkpoints beyond StoreOptions.Retained. On error nothing new is
// visible and the previous latest checkpoint stays latest; the caller owns
// md's state files then (Discard deletes them). Once the pointer is
// published Add returns nil: failures to delete subsumed files go to
// OnDiscardError.
func (s *CompletedStore) Add(ctx context.Context, md *Metadata) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkAdd(md); err != nil {
		return err
	}
	data, err := EncodeMetadata(md)
	if err != nil {
		return err
	}
	mkey := MetadataKey(s.job, md.Kind, md.ID)
	ex := blob.WriteOptions{Exclusive: true}
	err = s.storage.Write(ctx, mkey, data, ex)
	if errors.Is(err, blob.ErrExists) {
		// Not ours to delete: a leftover that Recover should have
		// removed, or another writer's.
		return fmt.Errorf("add %s %d of job %s: %w", md.Kind, md.ID, s.job, err)
	}
	if err == nil {
		// Read back before publishing: a store may acknowledge a write
		// it did not keep whole (see blob.Fault.Tear), and a pointer to
		// a torn metadata file would make a checkpoint visible that
		// cannot be restored.
		var back []byte
		if back, err = s.storage.Read(ctx, mkey); err == nil {
			_, err = DecodeMetadata(mkey, back)
		}
	}
	if err == nil {
		err = s.storage.Write(ctx, s.pointerKey(md.Kind, md.ID), []byte(mkey), ex)
	}
	if err != nil {
		// A failed write may have left a part behind. If the pointer
		// write failed ambiguously (it landed, the reply did not),
		// deleting the metadata leaves a pointer without one;
		// Recover lists that as a load error of a never-notified
		// checkpoint, which recovery skips.
		if derr := s.storage.Delete(ctx, mkey); derr != nil && !errors.Is(derr, blob.ErrNotFound) {
			s.opts.OnDiscardError(derr)
		}
		return fmt.Errorf("add %s %d of job %s: %w", md.Kind, md.ID, s.job, err)
	}

	s.retained = slices.Insert(s.retained, 0, &RetainedCheckpoint{ID: md.ID, Kind: md.Kind, MetadataKey: mkey, Metadata: md})
	for p := range sharedPaths(md) {
		s.refs[p]++
	}
	s.subsume(ctx)
	return nil
}

func (s *CompletedStore) checkAdd(md *Metadata) error {
	if !s.recovered {
		return errors.New("checkpoint store: Add before Recover")
	}
	if md.JobID != s.job {
		return fmt.Errorf("checkpoint store of job %s: add %s %d of job %s", s.job, md.Kind, md.ID, md.JobID)
	}
	if md.ID <= 0 {
		return fmt.Errorf("checkpoint store of job %s: add %s with id %d", s.job, md.Kind, md.ID)
	}
	if md.Kind != KindCheckpoint && md.Kind != KindSavepoint {
		return fmt.Errorf("checkpoint store of job %s: add %d with kind %d", s.job, md.ID, md.Kind)
	}
	if len(s.retained) > 0 && md.ID <= s.retained[0].ID {
		return fmt.Errorf("checkpoint store of job %s: add %s %d, not newer than retained %d", s.job, md.Kind, md.ID, s.retained[0].ID)
	}
	if md.Kind == KindSavepoint && len(sharedPaths(md)) > 0 {
		return fmt.Errorf("checkpoint store of job %s: savepoint %d references shared files; savepoints must be self-contained", s.job, md.ID)
	}
	return nil
}

// subsume drops the oldest retained checkpoints beyond the limit. If a
// pointer cannot be deleted, that checkpoint (and the older ones) stay
// retained — its files are still referenced from storage — and the next
// Add tries again.
func (s *CompletedStore) subsume(ctx context.Context) {
	for len(s.retained) > s.opts.Retained {
		old := s.retained[len(s.retained)-1]
		if err := s.storage.Delete(ctx, s.pointerKey(old.Kind, old.ID)); err != nil && !errors.Is(err, blob.ErrNotFound) {
			s.opts.OnDiscardError(fmt.Errorf("subsume %s %d of job %s: %w", old.Kind, old.ID, s.job, err))
			return
		}
		s.retained = s.retained[:len(s.retained)-1]
		if old.Kind == KindSavepoint {
			continue // the user's: only its pointer goes
		}
		if old.Metadata != nil {
			s.release(ctx, old.Metadata)
		}
		s.deleteDir(ctx, CheckpointDir(s.job, old.Kind, old.ID))
	}
}

// release forgets md's references and deletes the files only it used: its
// shared files whose count dropped to zero and its own files outside its
// directory.
func (s *CompletedStore) release(ctx context.Context, md *Metadata) {
	for p := range sharedPaths(md) {
		s.refs[p]--
		if s.refs[p] > 0 {
			continue
		}
		delete(s.refs, p)
		s.deleteKey(ctx, p)
	}
	s.deleteOwnOutside(ctx, md)
}

// Discard deletes the files of a checkpoint that was never added (aborted,
// or refused by Add), except shared files a retained checkpoint references.
// Errors go to OnDiscardError. Discarding a retained checkpoint is refused
// (reported there too): it is only ever deleted by subsumption.
func (s *CompletedStore) Discard(ctx context.Context, md *Metadata) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.ContainsFunc(s.retained, func(rc *RetainedCheckpoint) bool { return rc.ID == md.ID }) {
		s.opts.OnDiscardError(fmt.Errorf("checkpoint store of job %s: discard %s %d: it is retained", s.job, md.Kind, md.ID))
		return
	}
	for p := range sharedPaths(md) {
		if s.refs[p] == 0 {
			s.deleteKey(ctx, p)
		}
	}
	s.deleteOwnOutside(ctx, md)
	s.deleteDir(ctx, CheckpointDir(s.job, md.Kind, md.ID))
}

// deleteOwnOutside deletes md's own (not shared) files that lie outside its
// directory; deleteDir takes those inside.
func (s *CompletedStore) deleteOwnOutside(ctx context.Context, md *Metadata) {
	dir := CheckpointDir(s.job, md.Kind, md.ID)
	eachHandle(md, func(h StateHandle) {
		if !h.Shared && h.Path != "" && !strings.HasPrefix(h.Path, dir) {
			s.deleteKey(ctx, h.Path)
		}
	})
}

func (s *CompletedStore) deleteKey(ctx context.Context, key string) {
	if err := s.storage.Delete(ctx, key); err != nil && !errors.Is(err, blob.ErrNotFound) {
		s.opts.OnDiscardError(err)
	}
}

// deleteDir deletes every object under dir, the metadata file last, so that
// a crash in between leaves a directory Recover still recognises.
func (s *CompletedStore) deleteDir(ctx context.Context, dir string) {
	objs, err := s.storage.List(ctx, dir)
	if err != nil {
		s.opts.OnDiscardError(err)
		return
	}
	var meta string
	for _, o := range objs {
		if o.Key == dir+metadataName {
			meta = o.Key
			continue
		}
		s.deleteKey(ctx, o.Key)
	}
	if meta != "" {
		s.deleteKey(ctx, meta)
	}
}

// deleteOrphanDirs deletes checkpoint directories without a pointer.
func (s *CompletedStore) deleteOrphanDirs(ctx context.Context, published map[string]bool) {
	objs, err := s.storage.List(ctx, s.job+"/"+chkPrefix)
	if err != nil {
		s.opts.OnDiscardError(err)
		return
	}
	seen := map[string]bool{}
	for _, o := range objs {
		name, _, _ := strings.Cut(strings.TrimPrefix(o.Key, s.job+"/"), "/")
		if _, _, ok := parseDirName(name); !ok || published[name] || seen[name] {
			continue
		}
		seen[name] = true
		s.deleteDir(ctx, s.job+"/"+name+"/")
	}
}

// deleteUnreferencedShared deletes shared files no retained checkpoint
// references: uploaded for a checkpoint that never completed, or left by a
// crash while subsuming.
func (s *CompletedStore) deleteUnreferencedShared(ctx context.Context) {
	objs, err := s.storage.List(ctx, SharedDir(s.job))
	if err != nil {
		s.opts.OnDiscardError(err)
		return
	}
	for _, o := range objs {
		if s.refs[o.Key] == 0 {
			s.deleteKey(ctx, o.Key)
		}
	}
}

// MarkNotified records that the tasks were notified of checkpoint id's
// completion (so two-phase-commit sinks may have committed it).
func (s *CompletedStore) MarkNotified(ctx context.Context, id ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.retained, func(rc *RetainedCheckpoint) bool { return rc.ID == id })
	if i < 0 {
		return fmt.Errorf("checkpoint store of job %s: mark %d notified: not retained", s.job, id)
	}
	rc := s.retained[i]
	if err := s.storage.Write(ctx, NotifiedKey(s.job, rc.Kind, rc.ID), nil, blob.WriteOptions{}); err != nil {
		return fmt.Errorf("mark %s %d of job %s notified: %w", rc.Kind, rc.ID, s.job, err)
	}
	rc.Notified = true
	return nil
}

// Latest returns the newest retained checkpoint or savepoint (check its Err
// after a Recover), and false if none is retained.
func (s *CompletedStore) Latest() (RetainedCheckpoint, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.retained) == 0 {
		return RetainedCheckpoint{}, false
	}
	return *s.retained[0], true
}

// Retained returns the retained checkpoints and savepoints, newest first.
func (s *CompletedStore) Retained() []RetainedCheckpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot()
}

func (s *CompletedStore) snapshot() []RetainedCheckpoint {
	out := make([]RetainedCheckpoint, len(s.retained))
	for i, rc := range s.retained {
		out[i] = *rc
	}
	return out
}

// SharedRefs returns how many retained checkpoints reference a shared file
// (for tests and the REST checkpoint details).
func (s *CompletedStore) SharedRefs(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refs[path]
}
