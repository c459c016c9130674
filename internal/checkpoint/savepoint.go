package checkpoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/strom-dev/strom/internal/blob"
)

// Savepoints on storage (see doc.go, "Savepoints"): each one is a
// self-contained directory under the user's target,
//
//	<target>/savepoint-<job id[:6]>-<12 random hex>/
//	    _metadata                the metadata file, written last
//	    <uid>/<subtask>-keyed    state files, as in a checkpoint
//	    <uid>/<subtask>-operator
//
// and StateHandle.Path in its metadata is relative to that directory, so
// the directory can be moved or copied whole. It is opened as a blob store
// of its own (the directory's URL), which is why the keys need no prefix.

// SavepointMetadataName is the name of a savepoint's metadata file in its
// directory.
const SavepointMetadataName = metadataName

// ErrNotSavepoint is wrapped by the errors of LoadSavepoint and
// DisposeSavepoint for a path that holds no savepoint.
var ErrNotSavepoint = errors.New("not a savepoint")

// NewSavepointDirName returns a fresh name for a savepoint directory of
// the job: savepoint-<first 6 characters of the job id>-<12 random hex
// digits>, as Flink names them, so two savepoints never collide.
func NewSavepointDirName(jobID string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	short := jobID
	if len(short) > 6 {
		short = short[:6]
	}
	return spPrefix + short + "-" + hex.EncodeToString(b[:])
}

// StorageURL turns a user's location into a blob URL: a URL with a scheme
// is kept, a plain OS path (absolute or relative to the working
// directory) means file://.
func StorageURL(location string) (string, error) {
	if location == "" {
		return "", errors.New("empty location")
	}
	if u, err := url.Parse(location); err == nil && len(u.Scheme) > 1 {
		return location, nil // one letter is a Windows drive, not a scheme
	}
	abs, err := filepath.Abs(location)
	if err != nil {
		return "", fmt.Errorf("location %q: %w", location, err)
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String(), nil
}

// JoinURL appends name to the path of the blob URL base, keeping its query
// (an s3 endpoint, say): mem://x + d is mem://x/d, s3://b/p?q + d is
// s3://b/p/d?q.
func JoinURL(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("location %q: %w", base, err)
	}
	u.Path = path.Join("/", u.Path, name)
	u.RawPath = ""
	return u.String(), nil
}

// SavepointDir resolves what a user names a savepoint by — the URL of its
// directory, the plain OS path of the directory, or either of its
// _metadata file — to the URL of its directory.
func SavepointDir(location string) (string, error) {
	s, err := StorageURL(location)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("savepoint %q: %w", location, err)
	}
	if path.Base(u.Path) == metadataName {
		// mem://name/_metadata is the bucket "name", not "name/".
		u.Path = strings.TrimSuffix(path.Dir(u.Path), "/")
		u.RawPath = ""
	}
	return u.String(), nil
}

// LoadSavepoint reads and checks the metadata of the savepoint at
// location (see SavepointDir) and returns it with the URL of its
// directory, against which its handles' paths resolve. A missing
// directory or metadata file wraps ErrNotSavepoint and blob.ErrNotFound; a
// corrupt one ErrCorruptMetadata; a retained checkpoint's metadata
// ErrNotSavepoint.
func LoadSavepoint(ctx context.Context, location string) (*Metadata, string, error) {
	dir, err := SavepointDir(location)
	if err != nil {
		return nil, "", fmt.Errorf("savepoint %s: %w", location, err)
	}
	if u, _ := url.Parse(dir); u != nil && u.Scheme == "file" {
		// fileblob would create a missing directory: a typo must not
		// leave one behind, and must say what is wrong.
		if _, err := os.Stat(filepath.FromSlash(u.Path)); err != nil {
			return nil, "", fmt.Errorf("savepoint %s: %w: %w (%w)", location, ErrNotSavepoint, err, blob.ErrNotFound)
		}
	}
	st, err := blob.Open(ctx, dir)
	if err != nil {
		return nil, "", fmt.Errorf("savepoint %s: %w", location, err)
	}
	defer st.Close()
	data, err := st.Read(ctx, metadataName)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return nil, "", fmt.Errorf("savepoint %s: %w: no %s in %s: %w", location, ErrNotSavepoint, metadataName, dir, err)
		}
		return nil, "", fmt.Errorf("savepoint %s: %w", location, err)
	}
	md, err := DecodeMetadata(dir+"/"+metadataName, data)
	if err != nil {
		return nil, "", fmt.Errorf("savepoint %s: %w", location, err)
	}
	if md.Kind != KindSavepoint {
		return nil, "", fmt.Errorf("savepoint %s: %w: its metadata is of a %v (id %d of job %s)", location, ErrNotSavepoint, md.Kind, md.ID, md.JobID)
	}
	return md, dir, nil
}

// WriteSavepointMetadata writes md as the _metadata of the savepoint
// directory dir (a blob URL), after every state file: its presence is what
// makes the directory a savepoint.
func WriteSavepointMetadata(ctx context.Context, dir string, md *Metadata) error {
	data, err := EncodeMetadata(md)
	if err != nil {
		return err
	}
	st, err := blob.Open(ctx, dir)
	if err != nil {
		return err
	}
	err = st.Write(ctx, metadataName, data, blob.WriteOptions{})
	return errors.Join(err, st.Close())
}

// DisposeSavepoint deletes the savepoint at location (see SavepointDir):
// every file of its directory, after checking that its _metadata is a
// valid savepoint's, so a mistyped path cannot delete something else. The
// metadata goes first: a disposal cut short leaves no half savepoint that
// looks whole.
func DisposeSavepoint(ctx context.Context, location string) error {
	_, dir, err := LoadSavepoint(ctx, location)
	if err != nil {
		return fmt.Errorf("dispose: %w", err)
	}
	st, err := blob.Open(ctx, dir)
	if err != nil {
		return fmt.Errorf("dispose savepoint %s: %w", location, err)
	}
	defer st.Close()
	if err := st.Delete(ctx, metadataName); err != nil {
		return fmt.Errorf("dispose savepoint %s: %w", location, err)
	}
	objs, err := st.List(ctx, "")
	if err != nil {
		return fmt.Errorf("dispose savepoint %s: %w", location, err)
	}
	for _, o := range objs {
		if err := st.Delete(ctx, o.Key); err != nil && !errors.Is(err, blob.ErrNotFound) {
			return fmt.Errorf("dispose savepoint %s: %w", location, err)
		}
	}
	if u, _ := url.Parse(dir); u != nil && u.Scheme == "file" {
		// The files are gone; the empty directories fileblob leaves are
		// removed with the savepoint's own directory, and only those.
		if err := removeEmptyDirs(filepath.FromSlash(u.Path)); err != nil {
			return fmt.Errorf("dispose savepoint %s: %w", location, err)
		}
	}
	return nil
}

// removeEmptyDirs removes dir and its subdirectories if they hold no file.
func removeEmptyDirs(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			return fmt.Errorf("%s still holds %s", dir, e.Name())
		}
		if err := removeEmptyDirs(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return os.Remove(dir)
}
