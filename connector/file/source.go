package file

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/strom-dev/strom"
)

// readBatch is how many lines a reader emits per Read, so the task loop
// can look at its mailbox and timers between batches.
const readBatch = 512

// FileSplit is one file of a file source; Offset is the byte offset of the
// next line to read and Line the number of lines before it (for errors).
type FileSplit struct {
	Path   string
	Offset int64
	Line   int64
}

func (s *FileSplit) SplitID() string { return s.Path }

// LineSource reads records decoded from the lines of a file, or of every
// file in a directory (files starting with '.' or '_' are skipped), one
// split per file; FileSource is a LineSource of the lines themselves.
// Decode gets each line without its terminator ("\n" or "\r\n"; the slice
// is only valid during the call) and returns the record, or ok false for a
// line that holds none (a blank line, a comment); an error fails the job,
// naming the file and the line. MaxLineBytes, if set, bounds a line: a
// longer one fails the job rather than filling memory (a file without line
// breaks, say).
type LineSource[T any] struct {
	Path         string
	Decode       func(line []byte) (v T, ok bool, err error)
	MaxLineBytes int
}

// Bounded implements strom.Source: files end.
func (s LineSource[T]) Bounded() bool { return true }

// Splits implements strom.Source: one split per file, in name order.
func (s LineSource[T]) Splits(int) ([]strom.Split, error) {
	st, err := os.Stat(s.Path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []strom.Split{&FileSplit{Path: s.Path}}, nil
	}
	entries, err := os.ReadDir(s.Path)
	if err != nil {
		return nil, err
	}
	var out []strom.Split
	for _, e := range entries {
		if e.IsDir() || e.Name()[0] == '.' || e.Name()[0] == '_' {
			continue // hidden and in-progress files, as Flink's file source
		}
		out = append(out, &FileSplit{Path: filepath.Join(s.Path, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SplitID() < out[j].SplitID() })
	return out, nil
}

// NewReader implements strom.Source.
func (s LineSource[T]) NewReader(_ strom.SourceContext, splits []strom.Split) (strom.SourceReader[T], error) {
	r := &fileReader[T]{decode: s.Decode, maxLine: s.MaxLineBytes}
	for _, sp := range splits {
		c := *sp.(*FileSplit)
		r.splits = append(r.splits, &c)
	}
	return r, nil
}

type fileReader[T any] struct {
	decode  func([]byte) (T, bool, error)
	maxLine int
	splits  []*FileSplit
	// outs[i] is the output of splits[i]: every split of the reader is
	// registered at the first Read, so with a watermark strategy a file not
	// read yet holds back the watermark and none of its records is late
	// because another file was further ahead in event time.
	outs []strom.SourceOutput[T]
	f    *os.File
	br   *bufio.Reader
	long []byte // a line longer than br's buffer, being assembled
}

func (r *fileReader[T]) Read(out strom.SourceOutput[T]) (strom.ReadStatus, error) {
	if r.outs == nil {
		r.outs = make([]strom.SourceOutput[T], len(r.splits))
		for i, sp := range r.splits {
			r.outs[i] = out.ForSplit(sp.SplitID())
		}
	}
	for {
		if len(r.splits) == 0 {
			return strom.ReadStatus{Done: true}, nil
		}
		sp, sout := r.splits[0], r.outs[0]
		if r.f == nil {
			f, err := os.Open(sp.Path)
			if err != nil {
				return strom.ReadStatus{}, fmt.Errorf("reading %s: %w", sp.Path, err)
			}
			if _, err := f.Seek(sp.Offset, io.SeekStart); err != nil {
				f.Close()
				return strom.ReadStatus{}, fmt.Errorf("reading %s: %w", sp.Path, err)
			}
			r.f, r.br = f, bufio.NewReaderSize(f, 64<<10)
		}
		for range readBatch {
			line, err := r.readLine()
			if err == errLineTooLong {
				return strom.ReadStatus{}, fmt.Errorf("%s: line %d: longer than %d bytes", sp.Path, sp.Line+1, r.maxLine)
			}
			if len(line) > 0 {
				sp.Offset += int64(len(line))
				sp.Line++
				n := len(line)
				if line[n-1] == '\n' {
					n--
					if n > 0 && line[n-1] == '\r' {
						n--
					}
				}
				v, ok, derr := r.decode(line[:n])
				if derr != nil {
					return strom.ReadStatus{}, fmt.Errorf("%s: line %d: %w", sp.Path, sp.Line, derr)
				}
				if ok {
					sout.Collect(v)
				}
			}
			if err == io.EOF {
				r.f.Close()
				r.f, r.br = nil, nil
				r.splits, r.outs = r.splits[1:], r.outs[1:]
				out.ReleaseSplit(sp.SplitID())
				return strom.ReadStatus{}, nil
			}
			if err != nil {
				return strom.ReadStatus{}, fmt.Errorf("reading %s at byte %d: %w", sp.Path, sp.Offset, err)
			}
		}
		return strom.ReadStatus{}, nil
	}
}

func (r *fileReader[T]) Snapshot() ([]strom.Split, error) {
	out := make([]strom.Split, 0, len(r.splits))
	for _, s := range r.splits {
		c := *s
		out = append(out, &c)
	}
	return out, nil
}

func (r *fileReader[T]) Close() error {
	if r.f != nil {
		err := r.f.Close()
		r.f = nil
		return err
	}
	return nil
}

// FromFile creates a bounded stream of the lines of a file (without line
// terminators), or of every file in a directory (files starting with '.' or
// '_' are skipped). Files are split over the source's subtasks. A missing
// path fails the job with a clear error. For event time per file, use
// FromSourceWithWatermarks with FileSource.
func FromFile(env *strom.Environment, path string) strom.Stream[string] {
	return strom.FromSource(env, FileSource(path), "File Source: "+path)
}

// FileSource is the source FromFile reads: the lines of a file, or of every
// file in a directory, one split per file. A subtask reads its files one
// after another. Given to FromSourceWithWatermarks, each file is a split
// with its own watermark generator, and every file of a subtask holds back
// the subtask's watermark until it is read to its end: a directory of files
// with different time ranges yields no late record, whatever the order the
// files are read in (the watermark advances once a subtask reads its last
// file, so windows downstream hold everything until then). An idle timeout
// would let files not opened yet stop holding the watermark back: leave it
// out for files.
func FileSource(path string) strom.Source[string] {
	return LineSource[string]{Path: path, Decode: func(line []byte) (string, bool, error) { return string(line), true, nil }}
}

// readLine returns the next line with its terminator (none at the end of
// the file), assembling lines longer than the reader's buffer. The slice
// is valid until the next call.
func (r *fileReader[T]) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	r.long = append(r.long[:0], line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		line, err = r.br.ReadSlice('\n')
		r.long = append(r.long, line...)
		if r.maxLine > 0 && len(r.long) > r.maxLine {
			return nil, errLineTooLong
		}
	}
	return r.long, err
}

var errLineTooLong = errors.New("line too long")
