// Package savepoint reads a completed checkpoint or savepoint directory
// without the job that wrote it: its metadata (operators by UID), each
// operator's keyed states with their types, schemas, key counts and sizes,
// its operator-state lists, and the entries of one state decoded to JSON.
// It is what `strom savepoint inspect` prints.
//
// A directory is named by a blob URL (file:///…, s3://…, mem://…) or a
// plain OS path, of the directory or of its _metadata file. Keyed state is
// read through the schemas that keyed snapshots record since format
// version 3 (statebackend/schema.go); older snapshots, and states that
// record no schema (timers, window contents), are listed with their key
// counts and sizes, and their data is dumped per key group as base64.
package savepoint

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/strom-dev/strom/internal/blob"
	"github.com/strom-dev/strom/internal/checkpoint"
)

// MetadataFile is the name of the metadata file in a checkpoint or
// savepoint directory.
const MetadataFile = "_metadata"

var (
	// ErrNotFound is wrapped by Open's error for a path that does not exist.
	ErrNotFound = errors.New("no such checkpoint or savepoint")
	// ErrNotSnapshot is wrapped by Open's error for a directory without a
	// metadata file.
	ErrNotSnapshot = errors.New("not a checkpoint or savepoint directory (no " + MetadataFile + ")")
	// ErrUnknownOperator and ErrUnknownState are wrapped by the errors for
	// an operator UID or state name the snapshot does not hold.
	ErrUnknownOperator = errors.New("no such operator")
	ErrUnknownState    = errors.New("no such state")
)

// Snapshot is an opened checkpoint or savepoint directory.
type Snapshot struct {
	// Location is the directory's URL.
	Location string
	Metadata *checkpoint.Metadata
	store    blob.Store
	// ownDir is the directory's key prefix in the checkpoint storage root,
	// which checkpoint handle paths start with ("<job>/chk-<id>/").
	ownDir string
	// root opens the checkpoint storage root (the directory's grandparent)
	// for handles outside the directory (shared files); nil if it cannot.
	root     func(context.Context) (blob.Store, error)
	rootOpen blob.Store
}

// Open reads the metadata of the checkpoint or savepoint at location: a
// URL or an OS path of the directory or its _metadata file. Errors wrap
// ErrNotFound, ErrNotSnapshot, checkpoint.ErrCorruptMetadata or
// checkpoint.ErrUnsupportedVersion.
func Open(ctx context.Context, location string) (*Snapshot, error) {
	u, err := dirURL(location)
	if err != nil {
		return nil, err
	}
	store, err := blob.Open(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", location, err)
	}
	s := &Snapshot{Location: u.String(), store: store}
	data, err := store.Read(ctx, MetadataFile)
	if err != nil {
		store.Close()
		if errors.Is(err, blob.ErrNotFound) {
			return nil, fmt.Errorf("%s: %w", location, ErrNotSnapshot)
		}
		return nil, fmt.Errorf("read metadata of %s: %w", location, err)
	}
	if s.Metadata, err = checkpoint.DecodeMetadata(MetadataFile, data); err != nil {
		store.Close()
		return nil, fmt.Errorf("%s: %w", location, err)
	}
	md := s.Metadata
	s.ownDir = checkpoint.CheckpointDir(md.JobID, md.Kind, md.ID)
	if u.Scheme == "file" {
		ru := *u
		ru.Path = path.Dir(path.Dir(strings.TrimSuffix(u.Path, "/")))
		s.root = func(ctx context.Context) (blob.Store, error) { return blob.Open(ctx, ru.String()) }
	}
	return s, nil
}

// dirURL turns location into the URL of the directory, checking that a
// local one exists (blob.Open would create it).
func dirURL(location string) (*url.URL, error) {
	if location == "" {
		return nil, fmt.Errorf("%w: empty path", ErrNotFound)
	}
	// The same resolution as a resume's (URL, OS path, or _metadata).
	dir, err := checkpoint.SavepointDir(strings.TrimSuffix(location, "/"))
	if err != nil {
		return nil, fmt.Errorf("bad location %q: %w", location, err)
	}
	u, err := url.Parse(dir)
	if err != nil {
		return nil, fmt.Errorf("bad location %q: %w", location, err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if u.Scheme == "file" {
		fi, err := os.Stat(filepath.FromSlash(u.Path))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%w: %s", ErrNotFound, location)
			}
			return nil, fmt.Errorf("%s: %w", location, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%s: %w", location, ErrNotSnapshot)
		}
	}
	return u, nil
}

// Close releases the storage.
func (s *Snapshot) Close() error {
	err := s.store.Close()
	if s.rootOpen != nil {
		err = errors.Join(err, s.rootOpen.Close())
	}
	return err
}

// read returns the bytes a state handle points at. Savepoint handles are
// relative to the directory; checkpoint handles to the storage root, so
// those under the directory's own prefix are read from the directory and
// others (shared files) from the root.
func (s *Snapshot) read(ctx context.Context, h checkpoint.StateHandle) ([]byte, error) {
	if h.Path == "" {
		return h.Inline, nil
	}
	if rel, ok := strings.CutPrefix(h.Path, s.ownDir); ok {
		return s.store.Read(ctx, rel)
	}
	if s.Metadata.Kind == checkpoint.KindSavepoint {
		return s.store.Read(ctx, h.Path)
	}
	if s.rootOpen == nil {
		if s.root == nil {
			return nil, fmt.Errorf("state file %s lies outside %s, and only file URLs can reach their parent", h.Path, s.Location)
		}
		var err error
		if s.rootOpen, err = s.root(ctx); err != nil {
			return nil, err
		}
	}
	return s.rootOpen.Read(ctx, h.Path)
}

// Operator returns the operator with the given UID.
func (s *Snapshot) Operator(uid string) (*checkpoint.OperatorState, error) {
	for i := range s.Metadata.Operators {
		if s.Metadata.Operators[i].UID == uid {
			return &s.Metadata.Operators[i], nil
		}
	}
	uids := make([]string, 0, len(s.Metadata.Operators))
	for _, op := range s.Metadata.Operators {
		uids = append(uids, op.UID)
	}
	return nil, fmt.Errorf("%w %q in %s (operators: %s)", ErrUnknownOperator, uid, s.Location, strings.Join(uids, ", "))
}
