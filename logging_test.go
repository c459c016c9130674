package strom_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
)

// recordingHandler keeps every log record with its attributes (including
// those added by With), for assertions on what the runtime logs.
type recordingHandler struct {
	mu    *sync.Mutex
	recs  *[]loggedRecord
	attrs []slog.Attr
}

type loggedRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

func newRecordingLogger() (*slog.Logger, func() []loggedRecord) {
	h := &recordingHandler{mu: &sync.Mutex{}, recs: &[]loggedRecord{}}
	return slog.New(h), func() []loggedRecord {
		h.mu.Lock()
		defer h.mu.Unlock()
		return append([]loggedRecord(nil), *h.recs...)
	}
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	rec := loggedRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.Attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	*h.recs = append(*h.recs, rec)
	h.mu.Unlock()
	return nil
}

func (h *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *recordingHandler) WithGroup(string) slog.Handler { return h }

// A failing job is logged once, at error level, by what decides the job's
// fate, with job, operator, subtask and attempt as attributes; the stack of
// a panic only at debug level; and only on the logger given in Config.
func TestFailureLoggedOnceWithAttributes(t *testing.T) {
	logger, records := newRecordingLogger()
	defaultLogger, defaultRecords := newRecordingLogger()
	old := slog.Default()
	slog.SetDefault(defaultLogger)
	defer slog.SetDefault(old)

	env := strom.NewEnvironment(strom.Config{Parallelism: 2, Logger: logger})
	strom.Discard(strom.Map(strom.FromSlice(env, rangeSlice(100)), func(v int) int {
		if v == 77 {
			panic("cannot map 77")
		}
		return v
	}).Name("Explode"))
	_, err := env.Execute(context.Background(), "logged")
	require.ErrorContains(t, err, "cannot map 77")

	var errorsLogged []loggedRecord
	sawStack := false
	for _, r := range records() {
		if r.Level >= slog.LevelError {
			errorsLogged = append(errorsLogged, r)
			require.NotContains(t, r.Attrs, "stack", "no stack at error level")
		}
		for _, v := range r.Attrs {
			if strings.Contains(v, "goroutine ") {
				require.Equal(t, slog.LevelDebug, r.Level, "a stack trace only at debug level: %+v", r)
				sawStack = true
			}
		}
	}
	require.Len(t, errorsLogged, 1, "the failure is logged once: %+v", errorsLogged)
	e := errorsLogged[0]
	require.Equal(t, "job failed", e.Msg)
	require.Equal(t, "logged", e.Attrs["job"])
	require.Equal(t, "Explode", e.Attrs["operator"])
	require.Contains(t, []string{"0", "1"}, e.Attrs["subtask"])
	require.Equal(t, "0", e.Attrs["attempt"])
	require.Contains(t, e.Attrs["error"], "cannot map 77")
	require.True(t, sawStack, "the panic's stack is logged at debug level")
	require.Empty(t, defaultRecords(), "nothing goes to the default logger when one is given")
}
