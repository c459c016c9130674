package file

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/strom-dev/strom"
)

// The exactly-once file sink (Flink's FileSink in its simplest form) on
// strom.SinkToCommitting. Each subtask writes the records since the last
// checkpoint into a hidden working file; at the checkpoint's barrier the
// file is flushed, fsync'd, closed and renamed to a hidden in-progress name
// that carries the checkpoint id, which becomes the committable; once the
// checkpoint is complete the committer renames it to its final, visible
// name. A rename is atomic, so a file is visible whole or not at all, and
// idempotent as the committer does it: a missing in-progress file whose
// final name exists was committed already.
//
// Names, in the sink's directory (s: subtask, a: attempt, n: checkpoint
// id, or strom.EndOfInput for the last file of a job — in a restored
// job followed by the first 8 hex digits of the job's id: checkpoint ids
// grow across a job's runs, resumed ones included, but a run resumed
// after a drained stop ends its input again and must not reuse the name
// of the run before it):
//
//	.part-<s>-<a>-open.inprogress           the file being written
//	.part-<s>-<a>-<n>.inprogress            pre-committed at checkpoint n
//	part-<s>-<a>-<n>                        committed
//	part-<s>-<a>-9223372036854775807[-<job>]  committed, the end of input
//
// Readers must skip files starting with '.' (this package's sources do).

// pendingFile is the committable: a pre-committed file and its final name.
type pendingFile struct {
	InProgress string
	Final      string
}

// inProgressName matches the sink's hidden files: subtask, attempt, and a
// checkpoint id or "open".
var inProgressName = regexp.MustCompile(`^\.part-(\d+)-(\d+)-(\d+|open)(?:-[0-9a-f]+)?\.inprogress$`)

type exactlyOnceWriter[T any] struct {
	dir              string
	subtask, attempt int
	job              string // restored: a prefix of the job's id, for end-of-input names
	format           func([]byte, T) ([]byte, error)
	cur              *fileWriter[T] // the open working file, nil between checkpoints without records
}

func (w *exactlyOnceWriter[T]) workingPath() string {
	return filepath.Join(w.dir, fmt.Sprintf(".part-%d-%d-open.inprogress", w.subtask, w.attempt))
}

func (w *exactlyOnceWriter[T]) Write(v T, ts int64) error {
	if w.cur == nil {
		p := w.workingPath()
		// Truncate: a working file left by an earlier run of the same
		// subtask and attempt was never pre-committed, so nothing needs it.
		f, err := os.Create(p)
		if err != nil {
			return fmt.Errorf("exactly-once file sink: %w", err)
		}
		w.cur = &fileWriter[T]{f: f, bw: bufio.NewWriterSize(f, 64<<10), format: w.format, path: p}
	}
	return w.cur.Write(v, ts)
}

func (w *exactlyOnceWriter[T]) Flush() error {
	if w.cur == nil {
		return nil
	}
	return w.cur.Flush()
}

// PrepareCommit makes the working file durable under its in-progress name
// for checkpoint id: the snapshot will reference it, so it must survive a
// crash (the file's data and the directory entry are fsync'd).
func (w *exactlyOnceWriter[T]) PrepareCommit(id int64) ([]pendingFile, error) {
	if w.cur == nil {
		return nil, nil
	}
	cur := w.cur
	w.cur = nil
	if err := cur.Flush(); err != nil {
		cur.Close()
		return nil, err
	}
	if err := cur.Close(); err != nil {
		return nil, fmt.Errorf("closing %s: %w", cur.path, err)
	}
	name := fmt.Sprintf("part-%d-%d-%d", w.subtask, w.attempt, id)
	if id == strom.EndOfInput && w.job != "" {
		name += "-" + w.job
	}
	p := pendingFile{InProgress: filepath.Join(w.dir, "."+name+".inprogress"), Final: filepath.Join(w.dir, name)}
	if err := os.Rename(cur.path, p.InProgress); err != nil {
		return nil, fmt.Errorf("pre-committing checkpoint %d: %w", id, err)
	}
	if err := syncDir(w.dir); err != nil {
		return nil, fmt.Errorf("pre-committing checkpoint %d: %w", id, err)
	}
	return []pendingFile{p}, nil
}

// Close drops an open working file: no committable names it, so its
// records belong to no checkpoint and a restore replays them.
func (w *exactlyOnceWriter[T]) Close() error {
	if w.cur == nil {
		return nil
	}
	cur := w.cur
	w.cur = nil
	err := cur.Close()
	if rerr := os.Remove(cur.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("exactly-once file sink: dropping %s: %w", cur.path, err)
	}
	return nil
}

type fileCommitter struct{ dir string }

// Commit renames every pending file to its final name, then fsyncs the
// directory so the renames survive a crash. A file already committed is
// skipped, so a retry after a failure half way, or a restore committing
// again, finishes the rest without a second copy.
func (c fileCommitter) Commit(ctx context.Context, files []pendingFile) error {
	for i, p := range files {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("committing %s (%d of %d): %w", p.Final, i+1, len(files), err)
		}
		if err := commitFile(p); err != nil {
			return fmt.Errorf("committing %s (%d of %d): %w", p.Final, i+1, len(files), err)
		}
	}
	if err := syncDir(c.dir); err != nil {
		return fmt.Errorf("committing %d files: %w", len(files), err)
	}
	return nil
}

func commitFile(p pendingFile) error {
	_, ierr := os.Lstat(p.InProgress)
	_, ferr := os.Lstat(p.Final)
	switch {
	case ierr == nil && ferr == nil:
		// Not a half-done commit (a rename leaves one of the two): the
		// final name belongs to other output, say of a job restored from
		// an older checkpoint that wrote with the same checkpoint ids.
		return fmt.Errorf("both %s and the in-progress %s exist: refusing to overwrite", p.Final, p.InProgress)
	case ierr != nil && ferr == nil:
		return nil // committed already
	case ierr != nil:
		return fmt.Errorf("the in-progress file is lost and %s does not exist: %w", p.Final, ierr)
	}
	return os.Rename(p.InProgress, p.Final)
}

// Recover deletes the hidden files of the subtasks this subtask owns now
// (old subtask s with s mod parallelism = this subtask) that no restored
// committable references: working files and pre-commits of checkpoints
// that never completed. Other subtasks' files are left to them, as they
// may be writing already; files not named as the sink's are never touched.
func (c fileCommitter) Recover(ctx strom.SinkContext, restored []pendingFile) error {
	keep := make(map[string]bool, len(restored))
	for _, p := range restored {
		keep[filepath.Base(p.InProgress)] = true
	}
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", c.dir, err)
	}
	for _, e := range entries {
		m := inProgressName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() || keep[e.Name()] {
			continue
		}
		s, err := strconv.Atoi(m[1])
		if err != nil || s%ctx.Parallelism != ctx.Subtask {
			continue
		}
		if err := os.Remove(filepath.Join(c.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("deleting a stale in-progress file: %w", err)
		}
	}
	return nil
}

// syncDir fsyncs a directory, so the entries created and renamed in it
// are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	if err := d.Close(); serr == nil {
		serr = err
	}
	if serr != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, serr)
	}
	return nil
}

func exactlyOnceSink[T any](s strom.Stream[T], dir, name string, format func([]byte, T) ([]byte, error)) strom.Sink {
	return strom.SinkToCommitting(s, name,
		func(c strom.SinkContext) (strom.CommittingSinkWriter[T, pendingFile], error) {
			job := ""
			if c.Restored {
				job = c.JobID
			}
			job = strings.Map(func(r rune) rune {
				if ('0' <= r && r <= '9') || ('a' <= r && r <= 'f') {
					return r
				}
				return -1
			}, job)
			job = job[:min(len(job), 8)]
			return &exactlyOnceWriter[T]{dir: dir, subtask: c.Subtask, attempt: c.Attempt, job: job, format: format}, nil
		},
		func(strom.SinkContext) (strom.Committer[pendingFile], error) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("exactly-once file sink: %w", err)
			}
			return fileCommitter{dir: dir}, nil
		}, nil)
}

// WriteLinesExactlyOnce writes one line per record, formatted by format
// (fmt's %v when nil), into part files in directory dir, exactly once with
// checkpoints: records become visible in part-<subtask>-<attempt>-<n> once
// checkpoint n, the first after them, is complete (files starting with '.'
// are in progress; readers must skip them). A restore makes visible what
// the restored checkpoint holds and deletes what this sink's earlier runs
// left in progress; other files in dir are never touched. Without
// checkpoints each subtask's records become visible at the end of input,
// as part-<subtask>-<attempt>-9223372036854775807 (strom.EndOfInput; in a
// restored job followed by -<the first 8 hex digits of its id>). With
// checkpoints the records after the last checkpoint of a bounded job go to
// a file of that name too, committed by the job's final checkpoint
// (FLIP-147), which the job waits for before it finishes. Set a UID on the returned Sink so a restore finds its state; one
// job at a time may write to dir. A commit whose final name is already
// taken by another file (an earlier run's output in the same directory)
// fails the job rather than replace it: give each fresh run its own
// directory.
func WriteLinesExactlyOnce[T any](s strom.Stream[T], dir string, format func(T) string) strom.Sink {
	return exactlyOnceSink(s, dir, "Exactly-Once File Sink: "+dir, lineFormat(format))
}

// WriteJSONLinesExactlyOnce writes each record as one line of JSON (as
// WriteJSONLines does), exactly once, as WriteLinesExactlyOnce.
func WriteJSONLinesExactlyOnce[T any](s strom.Stream[T], dir string) strom.Sink {
	return exactlyOnceSink(s, dir, "Exactly-Once JSON File Sink: "+dir, appendJSON[T])
}
