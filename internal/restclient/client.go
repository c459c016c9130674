package restclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// EnvJobManager is the environment variable that names the cluster's REST
// address when no --jobmanager flag is given.
const EnvJobManager = "STROM_JOBMANAGER"

// DefaultAddress is the REST address of a cluster on this machine with the
// default port (Flink's 8081).
const DefaultAddress = "http://127.0.0.1:8081"

// Defaults of a Client's polling of asynchronous operations.
const (
	DefaultPollInterval     = 200 * time.Millisecond
	DefaultOperationTimeout = 10 * time.Minute
	DefaultReconnectTimeout = 30 * time.Second
)

// maxErrorBody bounds how much of an error answer is read: the errors
// text is short, and a broken proxy must not make the client buffer
// megabytes.
const maxErrorBody = 64 << 10

// Address is the cluster address to use: flag if set, else
// $STROM_JOBMANAGER, else DefaultAddress.
func Address(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv(EnvJobManager); env != "" {
		return env
	}
	return DefaultAddress
}

// ErrUnknownJob is wrapped by the error of a call about a job id the
// cluster does not know (a 404 on the job's path).
var ErrUnknownJob = errors.New("unknown job id")

// ErrNotSupported is wrapped by the error of a call the cluster does not
// serve (a 404 or 405 on an endpoint of a newer Flink version, such as a
// manual checkpoint trigger).
var ErrNotSupported = errors.New("not supported by this cluster")

// UnreachableError is the error of a request that got no HTTP answer: the
// cluster is down, the address is wrong, or the network is in the way.
type UnreachableError struct {
	URL string // the cluster's base URL
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the JobManager at %s: %v", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// APIError is a refusal by the server: its status and the text of its
// {"errors": [...]} body (or the body itself when it is not that JSON).
type APIError struct {
	Method, Path string
	Status       int
	Errors       []string
}

func (e *APIError) Error() string {
	msg := strings.Join(e.Errors, "; ")
	if msg == "" {
		msg = "(no error text)"
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), msg)
}

// Client talks to one cluster's REST API. Its fields may be changed before
// the first call; it is safe for concurrent use afterwards.
type Client struct {
	base string
	hc   *http.Client

	// PollInterval is how often an asynchronous operation or a job's
	// result is asked for.
	PollInterval time.Duration
	// OperationTimeout bounds the wait for an asynchronous operation
	// (savepoint, stop, disposal, checkpoint); the context may end it
	// sooner. A job's result (WaitJob) is bounded by the context only.
	OperationTimeout time.Duration
	// ReconnectTimeout is how long WaitJob keeps asking a cluster that
	// does not answer before it gives up (0: it gives up at once).
	ReconnectTimeout time.Duration
}

// New returns a client of the cluster at addr: a URL (http://host:port,
// optionally with a path prefix) or host:port, which means http.
func New(addr string) (*Client, error) {
	if addr == "" {
		addr = DefaultAddress
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("JobManager address %q: %w", addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("JobManager address %q: scheme %q is not http or https", addr, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("JobManager address %q has no host", addr)
	}
	return &Client{
		base:             strings.TrimRight(u.String(), "/"),
		hc:               &http.Client{},
		PollInterval:     DefaultPollInterval,
		OperationTimeout: DefaultOperationTimeout,
		ReconnectTimeout: DefaultReconnectTimeout,
	}, nil
}

// URL is the cluster's base URL.
func (c *Client) URL() string { return c.base }

// request is one call: a method, a path below the base URL, an optional
// body, and what a 404 means on that path.
type request struct {
	method, path string
	body         io.Reader
	contentType  string
	// notFound turns a 404 into the caller's error (nil: an APIError).
	notFound func(*APIError) error
}

// jsonBody encodes v as a request body.
func jsonBody(v any) (io.Reader, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	return bytes.NewReader(data), nil
}

// do sends req and decodes a 2xx answer's JSON into out (if not nil).
func (c *Client) do(ctx context.Context, req request, out any) error {
	hr, err := http.NewRequestWithContext(ctx, req.method, c.base+req.path, req.body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	hr.Header.Set("Accept", "application/json")
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", req.method, req.path, context.Cause(ctx))
		}
		return &UnreachableError{URL: c.base, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		apiErr := errorOf(req, resp)
		if resp.StatusCode == http.StatusNotFound && req.notFound != nil {
			return req.notFound(apiErr)
		}
		return apiErr
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", req.method, req.path, err)
	}
	return nil
}

// errorOf reads a refusal's {"errors": [...]} body.
func errorOf(req request, resp *http.Response) *APIError {
	e := &APIError{Method: req.method, Path: req.path, Status: resp.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(data, &body) == nil && len(body.Errors) > 0 {
		e.Errors = body.Errors
	} else if s := strings.TrimSpace(string(data)); s != "" {
		e.Errors = []string{s}
	}
	return e
}

// unknownJob is the notFound of a job's paths.
func unknownJob(id string) func(*APIError) error {
	return func(e *APIError) error {
		return fmt.Errorf("%w %s: the cluster has no such job (%w)", ErrUnknownJob, id, e)
	}
}

// jobPath is the path of a job's resource (id escaped, as it comes from
// the user).
func jobPath(id string, rest ...string) string {
	return "/jobs/" + url.PathEscape(id) + strings.Join(rest, "")
}

// CloseIdleConnections closes the client's kept-alive connections (a
// long-lived program need not call it; tests and short commands do, so no
// connection outlives them).
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }
