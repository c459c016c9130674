package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/rest/resttest"
)

// spec is Flink's REST API v1 spec (testdata/flink-rest-v1.16.yml; OpenAPI
// 3.0, Apache Flink 1.16's docs/static/generated/rest_v1_dispatcher.yml,
// Apache License 2.0) with the extensions resttest.Spec lists: the
// contract every response is validated against. A copy lives in testdata
// so the tests need nothing outside the repository.
type spec struct{ *resttest.Spec }

func loadSpec(t testing.TB) *spec { return &spec{resttest.LoadSpec(t)} }

// validate checks one response against the spec (see check).
func (sp *spec) validate(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	require.NoError(t, sp.check(req, status, header, body), "%s %s: %d %s", req.Method, req.URL, status, body)
}

// check validates one response (resttest.Spec.Check): against the
// operation's documented response for the status, or, for a path or
// method the spec does not have (404 and 405 of the router), against
// ErrorResponseBody. Every answer must be JSON.
func (sp *spec) check(req *http.Request, status int, header http.Header, body []byte) error {
	return sp.Check(req, status, header, body)
}

// TestSpecCheckFails makes sure the validation can fail: wrong types,
// values outside an enum, a missing required field, an undocumented
// status and a malformed error are all caught.
func TestSpecCheckFails(t *testing.T) {
	sp := loadSpec(t)
	h := http.Header{"Content-Type": {"application/json"}}
	get := func(p string) *http.Request {
		r, err := http.NewRequest("GET", p, nil)
		require.NoError(t, err)
		return r
	}
	job := "/jobs/" + jobA
	require.NoError(t, sp.check(get("/jobs"), 200, h, []byte(`{"jobs":[{"id":"`+jobA+`","status":"RUNNING"}]}`)))
	for _, tc := range []struct {
		req    *http.Request
		status int
		body   string
	}{
		{get("/jobs"), 200, `{"jobs":[{"id":"` + jobA + `","status":"SLEEPING"}]}`},
		{get("/jobs"), 200, `{"jobs":[{"id":"not-an-id","status":"RUNNING"}]}`},
		{get("/overview"), 200, `{"taskmanagers":"one"}`},
		{get(job + "/checkpoints/details/1"), 200, `{"id":1}`}, // className is required
		{get(job + "/vertices/" + VertexID(1) + "/backpressure"), 200, `{"backpressure-level":"severe"}`},
		{get("/jobs"), 201, `{"jobs":[]}`},
		{get("/jobs"), 404, `{"error":"x"}`},
		{get("/jobs"), 404, `{"errors":[]}`},
		{get("/nope"), 404, `{"errors":[1]}`},
		{get("/nope"), 200, `{}`},
	} {
		require.Error(t, sp.check(tc.req, tc.status, h, []byte(tc.body)), "%s %d %s", tc.req.URL, tc.status, tc.body)
	}
	require.Error(t, sp.check(get("/jobs"), 200, http.Header{"Content-Type": {"text/plain"}}, []byte(`{"jobs":[]}`)))
}

// client calls a Server over HTTP and validates every answer.
type client struct {
	t    testing.TB
	base string
	sp   *spec
	hc   *http.Client
}

// newClient makes a client with its own connections, closed when the test
// ends (so goleak sees none of them).
func newClient(t testing.TB, s *Server) *client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, base: s.URL(), sp: loadSpec(t), hc: &http.Client{Transport: tr}}
}

// do sends a request and returns the status and body of the validated
// answer. body is JSON-encoded unless it is a []byte or nil.
func (c *client) do(method, path string, body any, header ...string) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(c.t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	require.NoError(c.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.hc.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	vreq := req.Clone(context.Background())
	// The spec has no /v1 prefix; the server serves both.
	vreq.URL, _ = url.Parse(strings.TrimPrefix(path, "/v1"))
	c.sp.validate(c.t, vreq, resp.StatusCode, resp.Header, data)
	return resp.StatusCode, data
}

// get sends a request, requires status and decodes the answer into a map.
func (c *client) json(method, path string, body any, status int) map[string]any {
	c.t.Helper()
	got, data := c.do(method, path, body)
	require.Equal(c.t, status, got, "%s %s: %s", method, path, data)
	var out map[string]any
	require.NoError(c.t, json.Unmarshal(data, &out))
	return out
}

// errorOf requires an error answer with status and returns its messages.
func (c *client) errorOf(method, path string, body any, status int) []string {
	c.t.Helper()
	got, data := c.do(method, path, body)
	require.Equal(c.t, status, got, "%s %s: %s", method, path, data)
	var e struct{ Errors []string }
	require.NoError(c.t, json.Unmarshal(data, &e))
	require.NotEmpty(c.t, e.Errors)
	return e.Errors
}
