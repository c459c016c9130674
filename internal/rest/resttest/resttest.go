// Package resttest checks answers of Strom's REST API against Flink's spec
// (internal/rest/testdata/flink-rest-v1.16.yml) with the extensions
// internal/rest's doc lists, for tests outside package rest that run a
// real server (the Dispatcher's, on a minicluster), and for rest's own
// tests.
package resttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"
)

// Spec is Flink's spec with the extensions rest's package doc lists:
//
//   - every operation gets a "default" response, ErrorResponseBody
//     ({"errors": [string], required, at least one}): Flink's error body,
//     which its spec leaves out; so errors are validated too, and
//     IncludeResponseStatus makes any status that is neither documented nor
//     an error fail;
//   - JobDetailsInfo.plan is an object, not a string: Flink writes the plan
//     as raw JSON (@JsonRawValue), so its own responses contradict its spec
//     there, and scripts read .plan.nodes;
//   - AsynchronousOperationResult.operation is anyOf instead of oneOf: its
//     two alternatives (AsynchronousOperationInfo, SavepointInfo) have no
//     required fields, so every operation matches both and oneOf could
//     never pass — a defect of the generated spec, not of a response.
type Spec struct {
	doc    *openapi3.T
	router routers.Router
	errors *openapi3.Schema
}

// Doc is the loaded (extended) spec.
func (sp *Spec) Doc() *openapi3.T { return sp.doc }

var (
	once   sync.Once
	loaded *Spec
	lerr   error
)

// specFile is the spec's path, found from this file's (tests run in their
// package's directory, which is not this one).
func specFile() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "testdata", "flink-rest-v1.16.yml")
}

// LoadSpec loads the spec once per test binary.
func LoadSpec(t testing.TB) *Spec {
	t.Helper()
	once.Do(func() { loaded, lerr = load() })
	require.NoError(t, lerr, "loading %s", specFile())
	return loaded
}

func load() (*Spec, error) {
	doc, err := openapi3.NewLoader().LoadFromFile(specFile())
	if err != nil {
		return nil, err
	}
	// Flink's error body, which its spec leaves out, as a default
	// response of every operation.
	errSchema := &openapi3.Schema{
		Type:     &openapi3.Types{openapi3.TypeObject},
		Required: []string{"errors"},
		Properties: openapi3.Schemas{
			"errors": &openapi3.SchemaRef{Value: &openapi3.Schema{Type: &openapi3.Types{openapi3.TypeArray}, MinItems: 1,
				Items: &openapi3.SchemaRef{Value: &openapi3.Schema{Type: &openapi3.Types{openapi3.TypeString}}}}},
		},
	}
	doc.Components.Schemas["ErrorResponseBody"] = &openapi3.SchemaRef{Value: errSchema}
	errResp := openapi3.NewResponse().WithDescription("error").WithJSONSchema(errSchema)
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			op.Responses.Set("default", &openapi3.ResponseRef{Value: errResp})
		}
	}
	// The plan is raw JSON (an object), and the async result's oneOf can
	// never pass: see Spec.
	doc.Components.Schemas["JobDetailsInfo"].Value.Properties["plan"] = doc.Components.Schemas["RawJson"]
	res := doc.Components.Schemas["AsynchronousOperationResult"].Value.Properties["operation"].Value
	res.AnyOf, res.OneOf = res.OneOf, nil
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &Spec{doc: doc, router: router, errors: errSchema}, nil
}

// Check validates one answer: against the operation's documented response
// for its status (an undocumented status fails), or, for a path the spec
// does not have, against the error body. Every answer must be JSON.
func (sp *Spec) Check(req *http.Request, status int, header http.Header, body []byte) error {
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("Content-Type %q is not JSON", ct)
	}
	route, params, err := sp.router.FindRoute(req)
	if err != nil {
		if status < 400 {
			return fmt.Errorf("%s %s is not in the spec but answered %d", req.Method, req.URL, status)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return err
		}
		return sp.errors.VisitJSON(v)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// Client calls a REST server and validates every answer against the spec.
type Client struct {
	t    testing.TB
	base string
	sp   *Spec
	hc   *http.Client
}

// NewClient is a client of the server at base (http://host:port) with its
// own connections, closed when the test ends.
func NewClient(t testing.TB, base string) *Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &Client{t: t, base: strings.TrimSuffix(base, "/"), sp: LoadSpec(t), hc: &http.Client{Transport: tr}}
}

// Do sends a request (body JSON-encoded unless nil) and returns the status
// and body of the answer, which must pass the spec.
func (c *Client) Do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		require.NoError(c.t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	require.NoError(c.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	vreq := req.Clone(context.Background())
	vreq.URL, _ = url.Parse(strings.TrimPrefix(path, "/v1"))
	require.NoError(c.t, c.sp.Check(vreq, resp.StatusCode, resp.Header, data), "%s %s: %d %s", method, path, resp.StatusCode, data)
	return resp.StatusCode, data
}

// JSON sends a request, requires status and decodes the answer.
func (c *Client) JSON(method, path string, body any, status int) map[string]any {
	c.t.Helper()
	got, data := c.Do(method, path, body)
	require.Equal(c.t, status, got, "%s %s: %s", method, path, data)
	var out map[string]any
	require.NoError(c.t, json.Unmarshal(data, &out))
	return out
}
