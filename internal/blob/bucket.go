package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"

	gcblob "gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"
)

// Open opens the store a URL names (see the package comment for the
// schemes). It does no I/O for mem and s3 and creates the directory for
// file.
func Open(ctx context.Context, rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, &Error{Op: "open", URL: rawURL, Err: err}
	}
	if u.Scheme == "faulty" {
		st, err := openRegistered(u)
		if err != nil {
			return nil, &Error{Op: "open", URL: rawURL, Err: err}
		}
		return st, nil
	}
	s := &bucketStore{url: rawURL}
	switch u.Scheme {
	case "file":
		s.b, err = openFile(ctx, u)
	case "mem":
		s.b, s.shared = openMem(u)
		// memblob takes its bucket lock around the existence check and
		// the insert.
		s.exclusive = true
	case "s3":
		s.b, err = openS3(ctx, u)
		s.md5 = true
		// S3 has honoured "If-None-Match: *" on PUT since 2024 and s3blob
		// sends it for IfNotExist; gofakes3 checks it under its lock.
		s.exclusive = true
	default:
		err = fmt.Errorf("unsupported scheme %q (want file, mem or s3)", u.Scheme)
	}
	if err != nil {
		return nil, &Error{Op: "open", URL: rawURL, Err: err}
	}
	return s, nil
}

// openFile opens a directory. Three defaults differ from fileblob's, each
// overridable in the URL: create_dir (a fresh cluster's checkpoint
// directory does not exist yet), no_tmp_dir (fileblob otherwise writes to
// os.TempDir and renames, which fails across file systems), and
// metadata=skip (no ".attrs" sidecar files next to every state file: we
// never use blob attributes).
func openFile(ctx context.Context, u *url.URL) (*gcblob.Bucket, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("file URL needs an absolute path (file:///dir), got host %q", u.Host)
	}
	if !path.IsAbs(u.Path) {
		return nil, fmt.Errorf("file URL needs an absolute path, got %q", u.Path)
	}
	q := u.Query()
	for k, v := range map[string]string{"create_dir": "true", "no_tmp_dir": "true", "metadata": "skip"} {
		if _, ok := q[k]; !ok {
			q.Set(k, v)
		}
	}
	u2 := *u
	u2.RawQuery = q.Encode()
	return (&fileblob.URLOpener{}).OpenBucketURL(ctx, &u2)
}

// memBuckets are the named in-memory buckets of this process. They live
// until the process ends: a test that reopens "mem://job1" after a
// simulated crash must find what was written before.
var (
	memMu      sync.Mutex
	memBuckets = map[string]*gcblob.Bucket{}
)

func openMem(u *url.URL) (b *gcblob.Bucket, shared bool) {
	name := u.Host + u.Path
	if name == "" {
		return memblob.OpenBucket(nil), false
	}
	memMu.Lock()
	defer memMu.Unlock()
	b, ok := memBuckets[name]
	if !ok {
		b = memblob.OpenBucket(nil)
		memBuckets[name] = b
	}
	return b, true
}

// openS3 opens the bucket named by the host; the path, if any, becomes a
// key prefix.
func openS3(ctx context.Context, u *url.URL) (*gcblob.Bucket, error) {
	prefix := strings.Trim(u.Path, "/")
	u2 := *u
	u2.Path, u2.RawPath = "", ""
	b, err := (&s3blob.URLOpener{}).OpenBucketURL(ctx, &u2)
	if err != nil {
		return nil, err
	}
	if prefix != "" {
		b = gcblob.PrefixedBucket(b, prefix+"/")
	}
	return b, nil
}

// bucketStore is a Store over a gocloud bucket.
type bucketStore struct {
	url       string
	b         *gcblob.Bucket
	shared    bool // a named mem bucket: Close leaves it open for the next Open
	exclusive bool
	// md5 sends an MD5 of each Write (s3: the server checks what crossed
	// the network). Elsewhere gocloud's WriteAll would compute two of them
	// (its own and its writer's check of it), about 2 % of a checkpointing
	// query's CPU, for a local copy nobody checks.
	md5 bool
}

func (s *bucketStore) URL() string           { return s.url }
func (s *bucketStore) ExclusiveCreate() bool { return s.exclusive }

// fail wraps err with the operation, URL and key, and turns gocloud's error
// codes into our sentinels.
func (s *bucketStore) fail(op, key string, err error) error {
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		err = fmt.Errorf("%w: %w", ErrNotFound, err)
	case gcerrors.FailedPrecondition:
		// The only precondition we set is IfNotExist.
		if op == "write" {
			err = fmt.Errorf("%w: %w", ErrExists, err)
		}
	}
	return &Error{Op: op, URL: s.url, Key: key, Err: err}
}

func writerOptions(opts WriteOptions) *gcblob.WriterOptions {
	// An explicit content type stops gocloud from sniffing the first
	// 512 bytes of every state file.
	return &gcblob.WriterOptions{ContentType: "application/octet-stream", IfNotExist: opts.Exclusive}
}

func (s *bucketStore) Write(ctx context.Context, key string, data []byte, opts WriteOptions) error {
	if !s.md5 {
		return s.WriteFrom(ctx, key, bytes.NewReader(data), opts)
	}
	if err := s.b.WriteAll(ctx, key, data, writerOptions(opts)); err != nil {
		return s.fail("write", key, err)
	}
	return nil
}

func (s *bucketStore) WriteFrom(ctx context.Context, key string, r io.Reader, opts WriteOptions) error {
	// gocloud aborts a write (nothing becomes visible) only when its
	// context is cancelled before Close; a plain Close would publish
	// whatever part was copied.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.b.NewWriter(wctx, key, writerOptions(opts))
	if err != nil {
		return s.fail("write", key, err)
	}
	if _, err := io.Copy(w, r); err != nil {
		cancel()
		_ = w.Close()
		return s.fail("write", key, err)
	}
	if err := w.Close(); err != nil {
		return s.fail("write", key, err)
	}
	return nil
}

func (s *bucketStore) Read(ctx context.Context, key string) ([]byte, error) {
	data, err := s.b.ReadAll(ctx, key)
	if err != nil {
		return nil, s.fail("read", key, err)
	}
	return data, nil
}

func (s *bucketStore) Delete(ctx context.Context, key string) error {
	if err := s.b.Delete(ctx, key); err != nil {
		return s.fail("delete", key, err)
	}
	return nil
}

func (s *bucketStore) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	it := s.b.List(&gcblob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, s.fail("list", prefix, err)
		}
		out = append(out, Object{Key: obj.Key, Size: obj.Size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *bucketStore) Exists(ctx context.Context, key string) (bool, error) {
	ok, err := s.b.Exists(ctx, key)
	if err != nil {
		return false, s.fail("exists", key, err)
	}
	return ok, nil
}

func (s *bucketStore) Close() error {
	if s.shared {
		return nil
	}
	if err := s.b.Close(); err != nil {
		return s.fail("close", "", err)
	}
	return nil
}
