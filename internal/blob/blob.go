// Package blob is checkpoint storage addressed by URL: the one place that
// talks to gocloud.dev/blob, behind a small interface (Store) that the
// checkpoint code and its tests use.
//
// Supported URLs:
//
//	file:///abs/dir                 a directory, created if missing
//	mem://                          a fresh in-memory bucket (tests)
//	mem://name                      an in-memory bucket shared by every Open of
//	                                the same name in this process (tests that
//	                                "restart" a JobMaster and recover)
//	s3://bucket/prefix?region=...&endpoint=http://host:port&use_path_style=true
//
// The s3 query parameters are those of gocloud.dev/blob/s3blob (AWS SDK v2):
// region, endpoint, use_path_style (or s3ForcePathStyle), disable_https,
// anonymous, profile, request_checksum_calculation, ...; credentials come
// from the SDK's usual chain (environment, shared config). The path of an s3
// URL is a key prefix inside the bucket.
//
// Every operation on a single key is atomic on all three drivers: a reader
// sees the old object, the new one, or none, never a part (fileblob writes
// a temporary file and renames it; memblob swaps a map entry; an S3 PUT is
// atomic). Exclusive create (WriteOptions.Exclusive) is honoured only where
// ExclusiveCreate reports true; see there.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrNotFound is wrapped by every error about a key that does not exist:
// errors.Is(err, ErrNotFound).
var ErrNotFound = errors.New("blob: not found")

// ErrExists is wrapped by the error of an exclusive write whose key already
// exists.
var ErrExists = errors.New("blob: already exists")

// Object is one entry of a listing.
type Object struct {
	Key  string
	Size int64
}

// WriteOptions tune one write.
type WriteOptions struct {
	// Exclusive fails the write with ErrExists if the key exists. Only
	// stores whose ExclusiveCreate is true guarantee it against a
	// concurrent writer; the others check and then write (racy) — callers
	// that need the guarantee must not rely on it there.
	Exclusive bool
}

// Store is checkpoint storage: a flat namespace of keys ("a/b/c", '/' as
// separator, no leading '/') holding immutable-once-written objects.
//
// Errors name the store's URL and the key, and wrap ErrNotFound or ErrExists
// where those apply. All methods are safe for concurrent use.
type Store interface {
	// URL is what the store was opened with (for messages).
	URL() string
	// Write stores data under key, replacing an existing object unless
	// opts.Exclusive. The object becomes visible whole or not at all.
	Write(ctx context.Context, key string, data []byte, opts WriteOptions) error
	// WriteFrom is Write with the content streamed from r (state files
	// too large to hold in memory).
	WriteFrom(ctx context.Context, key string, r io.Reader, opts WriteOptions) error
	// Read returns the whole object.
	Read(ctx context.Context, key string) ([]byte, error)
	// Delete removes the object; a missing key is an error wrapping
	// ErrNotFound (callers that clean up idempotently ignore it).
	Delete(ctx context.Context, key string) error
	// List returns every object whose key starts with prefix, sorted by
	// key; the prefix is a plain string prefix, not a directory.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Exists reports whether key holds an object.
	Exists(ctx context.Context, key string) (bool, error)
	// ExclusiveCreate reports whether WriteOptions.Exclusive is atomic
	// against concurrent writers on this store.
	ExclusiveCreate() bool
	// Close releases the store; the objects stay.
	Close() error
}

// Error is the error of one store operation.
type Error struct {
	Op  string // "write", "read", "delete", "list", "exists", "open", "close"
	URL string
	Key string // the key, or the prefix of a list
	Err error
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("blob %s %s: %v", e.Op, e.URL, e.Err)
	}
	return fmt.Sprintf("blob %s %s key %q: %v", e.Op, e.URL, e.Key, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
