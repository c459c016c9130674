package dispatcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// StoredBinary is a job binary in a BinaryStore.
type StoredBinary struct {
	// ID is the sha256 of the content in hex: uploading the same binary
	// twice stores it once.
	ID       string
	Name     string // the name it was first uploaded under
	Size     int64
	Uploaded time.Time
	// Path is where the store keeps it (ends with ID).
	Path string
}

// BinaryStore keeps the job binaries the REST API uploads. It is an
// interface so that a highly available cluster can keep them in blob
// storage, where every JobManager finds them; DirStore keeps them in a
// local directory.
type BinaryStore interface {
	// Put stores what r yields under the sha256 of its content. An r that
	// ends with an error, or yields more than the store's size limit,
	// stores nothing and returns an error wrapping r's (or
	// ErrBinaryTooLarge).
	Put(ctx context.Context, name string, r io.Reader) (StoredBinary, error)
	// List returns the stored binaries, oldest first.
	List(ctx context.Context) ([]StoredBinary, error)
	// Open reads a stored binary; an unknown id is ErrUnknownBinary.
	Open(ctx context.Context, id string) (io.ReadCloser, StoredBinary, error)
	// Delete removes a stored binary; an unknown id is ErrUnknownBinary.
	Delete(ctx context.Context, id string) error
}

// Errors of a BinaryStore.
var (
	ErrUnknownBinary  = errors.New("unknown job binary")
	ErrBinaryTooLarge = errors.New("job binary exceeds the size limit")
)

// DirStore is a BinaryStore in a directory: each binary is the file named
// by its id (mode 0755, so it can be run in place), with its name and
// upload time in "<id>.meta". Uploads go to a temporary file first and are
// renamed into place once complete and hashed, so a reader never sees a
// partial binary, and an interrupted upload leaves only a temporary file
// that the next NewDirStore removes.
type DirStore struct {
	dir      string
	maxBytes int64
	mu       sync.Mutex // orders a Put's rename against a Delete of the same id
}

// NewDirStore opens (creating it) a store in dir that takes binaries of at
// most maxBytes (≤ 0: no limit).
func NewDirStore(dir string, maxBytes int64) (*DirStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("job binary store %s: %w", dir, err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, ".upload-*"))
	for _, t := range tmps {
		_ = os.Remove(t) // left by an upload cut short by a crash
	}
	return &DirStore{dir: dir, maxBytes: maxBytes}, nil
}

type binaryMeta struct {
	Name     string    `json:"name"`
	Uploaded time.Time `json:"uploaded"`
}

// validID: ids are the store's own sha256s; anything else names no binary
// (and can never name a path outside the directory).
func validID(id string) bool {
	if len(id) != 2*sha256.Size {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false // lower-case hex only, as hex.EncodeToString writes
		}
	}
	return true
}

func (s *DirStore) Put(ctx context.Context, name string, r io.Reader) (StoredBinary, error) {
	tmp, err := os.CreateTemp(s.dir, ".upload-*")
	if err != nil {
		return StoredBinary{}, fmt.Errorf("storing job binary %q: %w", name, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // no-op once renamed
	h := sha256.New()
	src := r
	if s.maxBytes > 0 {
		src = io.LimitReader(r, s.maxBytes+1)
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, src})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return StoredBinary{}, fmt.Errorf("storing job binary %q: %w", name, err)
	}
	if s.maxBytes > 0 && n > s.maxBytes {
		return StoredBinary{}, fmt.Errorf("storing job binary %q: %w (%d bytes)", name, ErrBinaryTooLarge, s.maxBytes)
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return StoredBinary{}, fmt.Errorf("storing job binary %q: %w", name, err)
	}
	id := hex.EncodeToString(h.Sum(nil))
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, err := s.stat(id); err == nil {
		return b, nil // the same content is stored already
	}
	meta, _ := json.Marshal(binaryMeta{Name: filepath.Base(name), Uploaded: time.Now().UTC()})
	// The metadata first: a binary without it would list with no name.
	if err := os.WriteFile(filepath.Join(s.dir, id+".meta"), meta, 0o644); err != nil {
		return StoredBinary{}, fmt.Errorf("storing job binary %q: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, id)); err != nil {
		_ = os.Remove(filepath.Join(s.dir, id+".meta"))
		return StoredBinary{}, fmt.Errorf("storing job binary %q: %w", name, err)
	}
	return s.stat(id)
}

// stat describes stored binary id.
func (s *DirStore) stat(id string) (StoredBinary, error) {
	if !validID(id) {
		return StoredBinary{}, fmt.Errorf("%w: %q", ErrUnknownBinary, id)
	}
	p := filepath.Join(s.dir, id)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return StoredBinary{}, fmt.Errorf("%w: %s", ErrUnknownBinary, id)
	}
	if err != nil {
		return StoredBinary{}, fmt.Errorf("job binary %s: %w", id, err)
	}
	b := StoredBinary{ID: id, Size: fi.Size(), Path: p, Uploaded: fi.ModTime().UTC(), Name: id}
	if data, err := os.ReadFile(p + ".meta"); err == nil {
		var m binaryMeta
		if json.Unmarshal(data, &m) == nil {
			b.Name, b.Uploaded = m.Name, m.Uploaded
		}
	}
	return b, nil
}

func (s *DirStore) List(ctx context.Context) ([]StoredBinary, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("listing job binaries: %w", err)
	}
	var out []StoredBinary
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if e.IsDir() || !validID(e.Name()) {
			continue // metadata, uploads in progress
		}
		b, err := s.stat(e.Name())
		if errors.Is(err, ErrUnknownBinary) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Uploaded.Before(out[j].Uploaded) })
	return out, nil
}

func (s *DirStore) Open(_ context.Context, id string) (io.ReadCloser, StoredBinary, error) {
	b, err := s.stat(id)
	if err != nil {
		return nil, StoredBinary{}, err
	}
	f, err := os.Open(b.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, StoredBinary{}, fmt.Errorf("%w: %s", ErrUnknownBinary, id)
	}
	if err != nil {
		return nil, StoredBinary{}, fmt.Errorf("job binary %s: %w", id, err)
	}
	return f, b, nil
}

func (s *DirStore) Delete(_ context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("%w: %q", ErrUnknownBinary, id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := os.Remove(filepath.Join(s.dir, id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrUnknownBinary, id)
	}
	if err != nil {
		return fmt.Errorf("deleting job binary %s: %w", id, err)
	}
	_ = os.Remove(filepath.Join(s.dir, id+".meta"))
	return nil
}

// ctxReader ends a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
