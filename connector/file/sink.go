package file

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/strom-dev/strom"
)

type fileWriter[T any] struct {
	f      *os.File
	bw     *bufio.Writer
	format func([]byte, T) ([]byte, error)
	buf    []byte
	path   string
}

func (w *fileWriter[T]) Write(v T, _ int64) error {
	var err error
	w.buf, err = w.format(w.buf[:0], v)
	if err != nil {
		return fmt.Errorf("formatting record for %s: %w", w.path, err)
	}
	w.buf = append(w.buf, '\n')
	if _, err := w.bw.Write(w.buf); err != nil {
		return fmt.Errorf("writing %s: %w", w.path, err)
	}
	return nil
}

func (w *fileWriter[T]) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", w.path, err)
	}
	return w.f.Sync()
}

func (w *fileWriter[T]) Close() error {
	if w.f == nil {
		return nil
	}
	ferr := w.bw.Flush()
	err := w.f.Close()
	w.f = nil
	if ferr != nil {
		return fmt.Errorf("writing %s: %w", w.path, ferr)
	}
	return err
}

// fileSink writes lines. With parallelism 1, path is the file; with more,
// path is a directory holding one part file per subtask (part-0, part-1, ...).
func fileSink[T any](s strom.Stream[T], path, name string, format func([]byte, T) ([]byte, error)) strom.Sink {
	return strom.SinkTo(s, name, func(c strom.SinkContext) (strom.SinkWriter[T], error) {
		p := path
		if c.Parallelism > 1 {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return nil, fmt.Errorf("file sink: %w", err)
			}
			if c.Subtask == 0 {
				if err := removeStaleParts(path, c.Parallelism); err != nil {
					return nil, fmt.Errorf("file sink: %w", err)
				}
			}
			p = filepath.Join(path, fmt.Sprintf("part-%d", c.Subtask))
		} else if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("file sink: %w", err)
			}
		}
		f, err := os.Create(p)
		if err != nil {
			return nil, fmt.Errorf("file sink: %w", err)
		}
		return &fileWriter[T]{f: f, bw: bufio.NewWriterSize(f, 64<<10), format: format, path: p}, nil
	}).Parallelism(1)
}

// removeStaleParts deletes the part files of an earlier run that this run
// will not overwrite (part-N with N ≥ parallelism), so the directory never
// mixes two runs' output. Each subtask truncates its own part-N; files
// not named part-N are not the sink's and stay.
func removeStaleParts(dir string, parallelism int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), "part-")
		if !ok || e.IsDir() {
			continue
		}
		i, err := strconv.Atoi(n)
		if err != nil || i < parallelism || strconv.Itoa(i) != n {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing a stale part file of an earlier run: %w", err)
		}
	}
	return nil
}

// WriteLines writes one line per record, formatted by format (fmt's %v when
// nil). The sink runs with parallelism 1 and path is a file, replaced if it
// exists. Set a higher Parallelism on the returned Sink to write a
// directory of part files instead: subtask i writes path/part-i, replacing
// it, and the files part-N of an earlier run with N at or above the
// parallelism are deleted before writing, so the directory holds exactly
// this run's parts; other files in it are left alone.
func WriteLines[T any](s strom.Stream[T], path string, format func(T) string) strom.Sink {
	return fileSink(s, path, "File Sink: "+path, lineFormat(format))
}

// WriteJSONLines writes each record as one line of JSON (encoding/json, or
// the record's own AppendJSON([]byte) []byte method when it has one). Files
// and part files are written as by WriteLines.
func WriteJSONLines[T any](s strom.Stream[T], path string) strom.Sink {
	return fileSink(s, path, "JSON File Sink: "+path, appendJSON[T])
}

// appendJSON appends v as JSON: the record's own AppendJSON([]byte) []byte
// method when it has one, else encoding/json.
func appendJSON[T any](b []byte, v T) ([]byte, error) {
	if a, ok := any(v).(interface{ AppendJSON([]byte) []byte }); ok {
		return a.AppendJSON(b), nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

// lineFormat is WriteLines's formatting: format, or fmt's %v when nil.
func lineFormat[T any](format func(T) string) func([]byte, T) ([]byte, error) {
	if format == nil {
		format = func(v T) string { return fmt.Sprint(v) }
	}
	return func(b []byte, v T) ([]byte, error) { return append(b, format(v)...), nil }
}
