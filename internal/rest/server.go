package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"
)

// DefaultAddr is where the REST API listens unless told otherwise: Flink's
// port, on loopback only, because the API runs uploaded binaries and must
// not be reachable from the network by accident.
const DefaultAddr = "127.0.0.1:8081"

// Config configures a Server. Zero values take the defaults.
type Config struct {
	// Addr is the listen address (host:port); port 0 picks a free one.
	Addr    string
	Cluster Cluster
	// MaxBodyBytes bounds a JSON request body (default 1 MiB);
	// MaxUploadBytes bounds a whole binary upload request (default 512 MiB).
	MaxBodyBytes, MaxUploadBytes int64
	// Version and Revision are reported as flink-version / flink-commit.
	Version, Revision string
	// RefreshInterval is the Web UI's refresh interval (default 3 s).
	RefreshInterval time.Duration
	// WebSubmit enables the UI's submit feature flag in /config.
	WebSubmit bool
	// OperationTTL is how long the result of an asynchronous operation
	// (savepoint, stop, disposal) stays readable after it ends (default
	// 5 min, Flink's); MaxOperations bounds the operations kept at once,
	// running or ended (default 1024): more are refused with 429.
	OperationTTL  time.Duration
	MaxOperations int
	// ReadHeaderTimeout bounds a client sending its headers (default 10 s),
	// BodyTimeout its JSON body (default 1 min) and UploadTimeout a binary
	// upload (default 10 min), so a slow or stalled client cannot hold a
	// connection and a handler for ever (408 when one runs out).
	ReadHeaderTimeout, BodyTimeout, UploadTimeout time.Duration
	Logger                                        *slog.Logger
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

func (c *Config) ensureDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = 512 << 20
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = 3 * time.Second
	}
	if c.OperationTTL <= 0 {
		c.OperationTTL = 5 * time.Minute
	}
	if c.MaxOperations <= 0 {
		c.MaxOperations = 1024
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = time.Minute
	}
	if c.UploadTimeout <= 0 {
		c.UploadTimeout = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server serves Flink's REST API v1 over a Cluster. It is the one place the
// REST listener is created.
type Server struct {
	cfg     Config
	ln      net.Listener
	srv     *http.Server
	handler http.Handler
	ops     *operations
	served  chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// NewServer listens on cfg.Addr and serves until Close.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Cluster == nil {
		return nil, errors.New("rest: Config.Cluster is nil")
	}
	cfg.ensureDefaults()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("rest: listening on %s: %w", cfg.Addr, err)
	}
	s := &Server{cfg: cfg, ln: ln, served: make(chan struct{})}
	s.ops = newOperations(cfg.OperationTTL, cfg.MaxOperations, cfg.Now)
	s.handler = s.routes()
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("rest: serving stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	cfg.Logger.Info("rest: listening", "addr", ln.Addr().String())
	return s, nil
}

// Addr is the address the server listens on (with the port chosen).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Handler is the API's handler, for mounting it beside the Web UI or for
// calling it without a socket (tests).
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops listening, ends open connections (waiting up to 5 s for
// requests in flight), cancels the asynchronous operations still running
// and waits for them.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			// Requests still running after the grace period: cut them.
			_ = s.srv.Close()
			s.closeErr = fmt.Errorf("rest: shutdown: %w", err)
		}
		<-s.served
		s.ops.close()
	})
	return s.closeErr
}

// route is one endpoint: its path pattern, and a handler per method.
type route struct {
	pattern string
	methods map[string]apiHandler
}

// apiHandler answers a request with a status and a value to send as JSON,
// or an error (an *apiError carries its status; others are mapped by
// statusOf).
type apiHandler func(r *http.Request) (status int, body any, err error)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.table() {
		for m, h := range rt.methods {
			mux.Handle(m+" "+rt.pattern, s.wrap(h))
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Flink serves every path also under /v1.
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/"); ok {
			r2 := *r
			u := *r.URL
			u.Path, u.RawPath = "/"+rest, ""
			r2.URL = &u
			r = &r2
		}
		// An unclean path would get the mux's HTML redirect; there is no
		// such resource.
		if p := r.URL.Path; p == "" || p[0] != '/' || path.Clean(p) != p {
			writeError(w, http.StatusNotFound, "Not found: "+r.URL.Path)
			return
		}
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// No endpoint: the mux would answer 404 or 405 (with Allow) in
		// plain text; keep its status and Allow and answer in JSON.
		cw := &captureWriter{header: http.Header{}}
		h.ServeHTTP(cw, r)
		if allow := cw.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		if cw.status == http.StatusMethodNotAllowed {
			writeError(w, cw.status, fmt.Sprintf("Request method %s is not allowed for %s (allowed: %s)", r.Method, r.URL.Path, w.Header().Get("Allow")))
			return
		}
		writeError(w, http.StatusNotFound, "Not found: "+r.URL.Path)
	})
}

// captureWriter records what the mux's own 404/405 handlers would send.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return len(b), nil
}
func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

// wrap turns an apiHandler into an http.Handler: it bounds the body,
// recovers from a panic (a bug: answered 500, logged, the server lives on)
// and writes the answer or the error as JSON.
func (s *Server) wrap(h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.cfg.Logger.Error("rest: handler panicked", "method", r.Method, "path", r.URL.Path, "panic", p)
				writeError(w, http.StatusInternalServerError, "Internal server error.")
			}
		}()
		limit := s.cfg.BodyTimeout
		if isUpload(r) {
			limit = s.cfg.UploadTimeout
		} else if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		timeBody(w, r, limit)
		start := time.Now()
		status, body, err := h(r)
		if err != nil {
			var msg string
			status, msg = s.statusOf(r, err)
			writeError(w, status, msg)
		} else {
			writeJSON(w, status, body)
		}
		s.cfg.Logger.Debug("rest: request", "method", r.Method, "path", r.URL.Path, "status", status, "duration", time.Since(start))
	})
}

// timeBody gives the request's body limit to arrive: the connection's read
// deadline is set until the body has been read to its end, then cleared, because the server's background read that notices a client
// going away would otherwise cancel the request's context at the deadline
// while the handler still works. A ResponseWriter without deadlines (a
// test recorder) leaves the body untimed.
func timeBody(w http.ResponseWriter, r *http.Request, limit time.Duration) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return
	}
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(limit)) != nil {
		return
	}
	r.Body = &timedBody{ReadCloser: r.Body, clear: func() { _ = rc.SetReadDeadline(time.Time{}) }}
}

type timedBody struct {
	io.ReadCloser
	clear   func()
	cleared bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	// Only a body read to its end clears the deadline: after a timeout the
	// server discards what is left of a small body before answering, which
	// must not wait for a client that sends nothing.
	if err == io.EOF && !b.cleared {
		b.cleared = true
		b.clear()
	}
	return n, err
}

// isUpload: the request carries a binary (bounded by MaxUploadBytes and
// UploadTimeout instead of the JSON limits).
func isUpload(r *http.Request) bool {
	return r.Method == http.MethodPost && (r.URL.Path == "/jars/upload" || r.URL.Path == "/jobs")
}

// apiError is an error with the HTTP status it is answered with.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// statusOf maps an error to its status and message.
func (s *Server) statusOf(r *http.Request, err error) (int, string) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.msg
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body exceeds the limit of %d bytes.", mbe.Limit)
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case r.Context().Err() != nil:
		// The client went away or gave up; it will not read this.
		return http.StatusServiceUnavailable, "Request cancelled: " + err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, err.Error()
	}
	s.cfg.Logger.Error("rest: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return http.StatusInternalServerError, "Internal server error: " + err.Error()
}

// errorBody is Flink's error response.
type errorBody struct {
	Errors []string `json:"errors"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Errors: []string{msg}})
}

// writeJSON encodes before writing anything, so an encoding failure is
// still a clean 500.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		_ = json.NewEncoder(&buf).Encode(errorBody{Errors: []string{"encoding the response: " + err.Error()}})
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// bodyError is the answer to a request body that could not be read: too
// large (413), too slow (408) or cut short (400).
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "Request body exceeds the limit of %d bytes.", mbe.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errorf(http.StatusRequestTimeout, "The request body was not received in time.")
	}
	return errorf(http.StatusBadRequest, "Reading the request body: %v", err)
}

// decodeBody reads a JSON request body into dst. An empty body is "{}" (as
// in Flink); unknown fields, trailing data and wrong types are 400; a body
// over the limit is 413.
func decodeBody(r *http.Request, dst any) error {
	if r.Body == nil {
		return nil
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	return decodeJSON(data, dst, "Request")
}

// decodeJSON decodes exactly one JSON value into dst, strictly: unknown
// fields, wrong types and trailing data are 400.
func decodeJSON(data []byte, dst any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return errorf(http.StatusBadRequest, "%s did not match expected format: %v", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, "%s did not match expected format: data after the JSON value", what)
	}
	return nil
}
