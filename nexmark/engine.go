package nexmark

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strom-dev/strom"
)

// This file runs the Nexmark queries on the Strom engine: the event sources (the
// generator, or a JSON-lines file), where rows go (Output), and Run, which builds and
// executes one query. The queries themselves are in the query_*.go files, written with
// the public strom API only.

// ---- the generator as a strom source --------------------------------------------------

// Source is the Nexmark generator as a strom.Source: events 0..Count-1 of Gen (Count < 0:
// unbounded), split into one split per subtask — subtask i of p generates events i, i+p,
// i+2p, ... — so the union over subtasks is exactly the single-reader stream at every
// parallelism. Each event is emitted with its dateTime as event timestamp; put
// AssignTimestamps after it (Events does) for watermarks.
type Source struct {
	Gen   *Generator
	Count int64
}

// SourceSplit is one subtask's share of the generator: events Next, Next+Stride, ...
// (below the count). Next is the reader's position, so a snapshot of the split is where
// the reader resumes.
type SourceSplit struct {
	Next, Stride int64
}

// SplitID implements strom.Split.
func (s *SourceSplit) SplitID() string {
	return "nexmark-" + strconv.FormatInt(s.Next%max(s.Stride, 1), 10) + "/" + strconv.FormatInt(s.Stride, 10)
}

// Bounded implements strom.Source.
func (s Source) Bounded() bool { return s.Count >= 0 }

// Splits implements strom.Source: one split per subtask.
func (s Source) Splits(parallelism int) ([]strom.Split, error) {
	if s.Gen == nil {
		return nil, errors.New("nexmark source without generator")
	}
	out := make([]strom.Split, parallelism)
	for i := range parallelism {
		out[i] = &SourceSplit{Next: int64(i), Stride: int64(parallelism)}
	}
	return out, nil
}

// NewReader implements strom.Source.
func (s Source) NewReader(_ strom.SourceContext, splits []strom.Split) (strom.SourceReader[Event], error) {
	r := &sourceReader{gen: s.Gen, count: s.Count}
	for _, sp := range splits {
		c, ok := sp.(*SourceSplit)
		if !ok {
			return nil, fmt.Errorf("nexmark source: unexpected split %T", sp)
		}
		cp := *c
		r.splits = append(r.splits, &cp)
	}
	return r, nil
}

// sourceBatch is how many events a Read emits, so the task can look at its mailbox and
// timers in between.
const sourceBatch = 512

type sourceReader struct {
	gen    *Generator
	count  int64
	splits []*SourceSplit
	slab   Slab
}

func (r *sourceReader) Read(out strom.SourceOutput[Event]) (strom.ReadStatus, error) {
	for len(r.splits) > 0 {
		sp := r.splits[0]
		end := sp.Next + sourceBatch*sp.Stride
		if r.count >= 0 && end > r.count {
			end = r.count
		}
		if sp.Next >= end {
			r.splits = r.splits[1:]
			continue
		}
		g, slab := r.gen, &r.slab
		n := sp.Next
		for ; n < end; n += sp.Stride {
			e := g.EventInto(n, slab)
			out.CollectAt(e, e.Timestamp())
		}
		sp.Next = n
		return strom.ReadStatus{}, nil
	}
	return strom.ReadStatus{Done: true}, nil
}

func (r *sourceReader) Snapshot() ([]strom.Split, error) {
	out := make([]strom.Split, len(r.splits))
	for i, s := range r.splits {
		c := *s
		out[i] = &c
	}
	return out, nil
}

func (r *sourceReader) Close() error { return nil }

// Events returns events 0..count-1 of g as a stream with event timestamps and
// watermarks. The watermark trails the highest dateTime seen by each subtask by the
// generator's OutOfOrderness (the generator guarantees no event is later than that), so
// no event is ever late.
func Events(env *strom.Environment, g *Generator, count int64) strom.Stream[Event] {
	src := strom.FromSource[Event](env, Source{Gen: g, Count: count}, "Nexmark Source")
	return strom.AssignTimestamps(src, strom.BoundedOutOfOrderness[Event](g.Config().OutOfOrderness)).Name("Nexmark Watermarks")
}

// ---- JSON-lines files as a strom source ---------------------------------------------

// FileSource reads events in the JSON-lines input format (see ParseEventJSON) from a
// file, or from every file of a directory (names starting with '.' or '_' skipped), one
// split per file. A malformed line fails the job with an error naming the file and the
// line number. Events is the number of events read so far over all readers.
type FileSource struct {
	Path   string
	Events *atomic.Int64
}

// FileSplit is one file of a FileSource; Offset is the byte offset of the next line and
// Line the number of lines before it.
type FileSplit struct {
	Path   string
	Offset int64
	Line   int64
}

// SplitID implements strom.Split.
func (s *FileSplit) SplitID() string { return s.Path }

// Bounded implements strom.Source.
func (s FileSource) Bounded() bool { return true }

// Splits implements strom.Source.
func (s FileSource) Splits(int) ([]strom.Split, error) {
	files, err := inputFiles(s.Path)
	if err != nil {
		return nil, err
	}
	out := make([]strom.Split, len(files))
	for i, f := range files {
		out[i] = &FileSplit{Path: f}
	}
	return out, nil
}

// inputFiles lists the files of path: itself, or the visible files of a directory.
func inputFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		out = append(out, filepath.Join(path, e.Name()))
	}
	sort.Strings(out)
	return out, nil
}

// NewReader implements strom.Source.
func (s FileSource) NewReader(_ strom.SourceContext, splits []strom.Split) (strom.SourceReader[Event], error) {
	r := &fileReader{events: s.Events}
	for _, sp := range splits {
		c, ok := sp.(*FileSplit)
		if !ok {
			return nil, fmt.Errorf("nexmark file source: unexpected split %T", sp)
		}
		cp := *c
		r.splits = append(r.splits, &cp)
	}
	return r, nil
}

type fileReader struct {
	splits []*FileSplit
	f      *os.File
	br     *bufio.Reader
	long   []byte // a line longer than br's buffer, being assembled
	events *atomic.Int64
}

func (r *fileReader) Read(out strom.SourceOutput[Event]) (strom.ReadStatus, error) {
	if len(r.splits) == 0 {
		return strom.ReadStatus{Done: true}, nil
	}
	sp := r.splits[0]
	if r.f == nil {
		f, err := os.Open(sp.Path)
		if err != nil {
			return strom.ReadStatus{}, err
		}
		if _, err := f.Seek(sp.Offset, io.SeekStart); err != nil {
			f.Close()
			return strom.ReadStatus{}, fmt.Errorf("%s: %w", sp.Path, err)
		}
		r.f, r.br = f, bufio.NewReaderSize(f, 256<<10)
	}
	emitted := int64(0)
	defer func() {
		if r.events != nil {
			r.events.Add(emitted)
		}
	}()
	for range sourceBatch {
		line, err := r.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			r.long = append(r.long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.br.ReadSlice('\n')
				r.long = append(r.long, line...)
				if len(r.long) > maxLineBytes {
					return strom.ReadStatus{}, fmt.Errorf("%s: line %d: longer than %d bytes", sp.Path, sp.Line+1, maxLineBytes)
				}
			}
			line = r.long
		}
		if len(line) > 0 {
			sp.Offset += int64(len(line))
			sp.Line++
			if t := bytes.TrimSpace(line); len(t) > 0 {
				e, perr := ParseEventJSON(t)
				if perr != nil {
					return strom.ReadStatus{}, fmt.Errorf("%s: line %d: %w", sp.Path, sp.Line, perr)
				}
				out.CollectAt(e, e.Timestamp())
				emitted++
			}
		}
		if err == io.EOF {
			cerr := r.f.Close()
			r.f, r.br = nil, nil
			r.splits = r.splits[1:]
			if cerr != nil {
				return strom.ReadStatus{}, fmt.Errorf("%s: %w", sp.Path, cerr)
			}
			return strom.ReadStatus{}, nil
		}
		if err != nil {
			return strom.ReadStatus{}, fmt.Errorf("%s: line %d: %w", sp.Path, sp.Line+1, err)
		}
	}
	return strom.ReadStatus{}, nil
}

func (r *fileReader) Snapshot() ([]strom.Split, error) {
	out := make([]strom.Split, len(r.splits))
	for i, s := range r.splits {
		c := *s
		out[i] = &c
	}
	return out, nil
}

func (r *fileReader) Close() error {
	if r.f != nil {
		err := r.f.Close()
		r.f = nil
		return err
	}
	return nil
}

// FileEvents returns the events of a JSON-lines file (or directory of files) as a stream
// with event timestamps and watermarks that trail the highest dateTime seen by
// outOfOrderness: events later than that are late (and dropped by the windowed
// queries). counter, if not nil, counts the events read.
func FileEvents(env *strom.Environment, path string, outOfOrderness time.Duration, counter *atomic.Int64) strom.Stream[Event] {
	src := strom.FromSource[Event](env, FileSource{Path: path, Events: counter}, "Nexmark File Source")
	return strom.AssignTimestamps(src, strom.BoundedOutOfOrderness[Event](outOfOrderness)).Name("Nexmark Watermarks")
}

// ---- where rows go --------------------------------------------------------------------

// Output says where a query's rows go: to a JSON-lines file (Path), to a function
// (Lines, for tests), or, with neither, to a blackhole sink that consumes and counts
// every row. File and function sinks run with parallelism 1, so rows reach them in one
// sequence (q4's rows of one category in the order of its updates); the blackhole runs
// at the job's parallelism, chained to the query's last operator.
type Output struct {
	// Path is the JSON-lines file to write (rows as Row.AppendJSON writes them).
	Path string
	// Lines, if set (and Path is not), is called with each row's JSON, without newline;
	// the slice is only valid during the call.
	Lines func(line []byte)

	rows atomic.Int64
}

// Rows is the number of rows the query has produced so far.
func (o *Output) Rows() int64 { return o.rows.Load() }

// sinkRows attaches the sink described by out to a query's row stream.
func sinkRows[R Row](rows strom.Stream[R], out *Output) {
	switch {
	case out.Path != "":
		path := out.Path
		strom.SinkTo(rows, "JSON Sink: "+path, func(strom.SinkContext) (strom.SinkWriter[R], error) {
			if dir := filepath.Dir(path); dir != "" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return nil, err
				}
			}
			f, err := os.Create(path)
			if err != nil {
				return nil, err
			}
			return &jsonWriter[R]{f: f, bw: bufio.NewWriterSize(f, 256<<10), path: path, rows: &out.rows}, nil
		}).Parallelism(1)
	case out.Lines != nil:
		fn := out.Lines
		strom.SinkTo(rows, "Row Sink", func(strom.SinkContext) (strom.SinkWriter[R], error) {
			return &funcWriter[R]{fn: fn, rows: &out.rows}, nil
		}).Parallelism(1)
	default:
		strom.SinkTo(rows, "Blackhole", func(strom.SinkContext) (strom.SinkWriter[R], error) {
			return &blackhole[R]{rows: &out.rows}, nil
		})
	}
}

// jsonWriter writes rows as JSON lines.
type jsonWriter[R Row] struct {
	f    *os.File
	bw   *bufio.Writer
	path string
	buf  []byte
	n    int64
	rows *atomic.Int64
}

func (w *jsonWriter[R]) Write(v R, _ int64) error {
	w.buf = append(v.AppendJSON(w.buf[:0]), '\n')
	w.n++
	if _, err := w.bw.Write(w.buf); err != nil {
		return fmt.Errorf("writing %s: %w", w.path, err)
	}
	return nil
}

func (w *jsonWriter[R]) Flush() error {
	w.rows.Add(w.n)
	w.n = 0
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", w.path, err)
	}
	return nil
}

func (w *jsonWriter[R]) Close() error {
	if w.f == nil {
		return nil
	}
	w.rows.Add(w.n)
	w.n = 0
	ferr := w.bw.Flush()
	err := w.f.Close()
	w.f = nil
	if ferr != nil {
		return fmt.Errorf("writing %s: %w", w.path, ferr)
	}
	return err
}

type funcWriter[R Row] struct {
	fn   func([]byte)
	buf  []byte
	rows *atomic.Int64
}

func (w *funcWriter[R]) Write(v R, _ int64) error {
	w.buf = v.AppendJSON(w.buf[:0])
	w.fn(w.buf)
	w.rows.Add(1)
	return nil
}

func (w *funcWriter[R]) Flush() error { return nil }
func (w *funcWriter[R]) Close() error { return nil }

// blackhole consumes rows, counting them (published at the end of input).
type blackhole[R Row] struct {
	n    int64
	rows *atomic.Int64
}

func (w *blackhole[R]) Write(R, int64) error { w.n++; return nil }

func (w *blackhole[R]) Flush() error {
	w.rows.Add(w.n)
	w.n = 0
	return nil
}

func (w *blackhole[R]) Close() error { return w.Flush() }

// ---- the query registry and the runner ------------------------------------------------

// queries maps each query to the function that builds it: from the event stream to a
// sink of its typed rows.
var queries = map[string]func(events strom.Stream[Event], out *Output){
	"q0":  query0,
	"q1":  query1,
	"q2":  query2,
	"q3":  query3,
	"q4":  query4,
	"q5":  query5,
	"q7":  query7,
	"q8":  query8,
	"q9":  query9,
	"q11": query11,
}

// ErrUnknownQuery is wrapped by the error for a query name not in Queries.
var ErrUnknownQuery = errors.New("unknown query")

// CheckQuery returns an error listing the valid queries if query is not one of them.
func CheckQuery(query string) error {
	if _, ok := queries[query]; !ok {
		return fmt.Errorf("%w %q (valid: %s)", ErrUnknownQuery, query, strings.Join(Queries, ", "))
	}
	return nil
}

// BuildQuery adds query to the events' environment, its rows going to out.
func BuildQuery(query string, events strom.Stream[Event], out *Output) error {
	if err := CheckQuery(query); err != nil {
		return err
	}
	queries[query](events, out)
	return nil
}

// RunConfig configures Run.
type RunConfig struct {
	// Query is one of Queries.
	Query string
	// Generator configures the generated events (when Input is empty).
	Generator GeneratorConfig
	// Events is the number of generated events (when Input is empty).
	Events int64
	// Input is a JSON-lines file (or directory) to read the events from instead.
	Input string
	// OutOfOrderness bounds the disorder of Input's events: the watermark trails the
	// highest dateTime seen by it. (Generated events use Generator.OutOfOrderness.)
	OutOfOrderness time.Duration
	// Parallelism is the job's default parallelism (default 1).
	Parallelism int
	// Output is where rows go (nil: a blackhole).
	Output *Output
	// Configure, if set, adjusts the environment's configuration.
	Configure func(*strom.Config)
}

// RunResult is what Run measured.
type RunResult struct {
	// Events is the number of input events processed.
	Events int64
	// Rows is the number of rows produced.
	Rows int64
	// Elapsed is the wall-clock time of the job, from submission to completion.
	Elapsed time.Duration
	// Job is the engine's result (per-operator record counts).
	Job *strom.JobResult
}

// Run executes one query on an embedded Strom cluster and waits for it to finish.
func Run(ctx context.Context, cfg RunConfig) (RunResult, error) {
	if err := CheckQuery(cfg.Query); err != nil {
		return RunResult{}, err
	}
	if cfg.Input != "" && cfg.Events > 0 {
		return RunResult{}, errors.New("nexmark: give either generated events or an input file, not both")
	}
	if cfg.Input != "" {
		if _, err := inputFiles(cfg.Input); err != nil {
			return RunResult{}, fmt.Errorf("nexmark: input: %w", err)
		}
	}
	out := cfg.Output
	if out == nil {
		out = &Output{}
	}
	env := strom.NewEnvironment(strom.Config{Parallelism: max(cfg.Parallelism, 1)})
	if cfg.Configure != nil {
		env.Configure(cfg.Configure)
	}
	var (
		events  strom.Stream[Event]
		counter atomic.Int64
	)
	if cfg.Input != "" {
		events = FileEvents(env, cfg.Input, cfg.OutOfOrderness, &counter)
	} else {
		events = Events(env, NewGenerator(cfg.Generator), max(cfg.Events, 0))
	}
	if err := BuildQuery(cfg.Query, events, out); err != nil {
		return RunResult{}, err
	}
	rowsBefore := out.Rows()
	start := time.Now()
	job, err := env.Execute(ctx, "nexmark "+cfg.Query)
	res := RunResult{Elapsed: time.Since(start), Job: job, Rows: out.Rows() - rowsBefore, Events: max(cfg.Events, 0)}
	if cfg.Input != "" {
		res.Events = counter.Load()
	}
	if err != nil {
		return res, err
	}
	return res, nil
}

// lockedLines collects row lines from a Lines output (tests, small runs).
type lockedLines struct {
	mu    sync.Mutex
	lines []string
}

// CollectLines returns an Output whose rows are collected in memory, and a function
// returning them (as JSON lines, in sink order) once the job has run.
func CollectLines() (*Output, func() []string) {
	l := &lockedLines{}
	out := &Output{Lines: func(b []byte) {
		l.mu.Lock()
		l.lines = append(l.lines, string(b))
		l.mu.Unlock()
	}}
	return out, func() []string {
		l.mu.Lock()
		defer l.mu.Unlock()
		return append([]string(nil), l.lines...)
	}
}
