package resttest

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// The validation can fail: wrong types and enum values, undocumented
// statuses, bad error bodies and non-JSON answers are caught.
func TestCheckFails(t *testing.T) {
	sp := LoadSpec(t)
	h := http.Header{"Content-Type": {"application/json"}}
	get := func(p string) *http.Request {
		r, err := http.NewRequest("GET", p, nil)
		require.NoError(t, err)
		return r
	}
	const job = "0123456789abcdef0123456789abcdef"
	require.NoError(t, sp.Check(get("/jobs"), 200, h, []byte(`{"jobs":[{"id":"`+job+`","status":"RUNNING"}]}`)))
	require.NoError(t, sp.Check(get("/nope"), 404, h, []byte(`{"errors":["no such path"]}`)))
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/jobs", 200, `{"jobs":[{"id":"` + job + `","status":"SLEEPING"}]}`},
		{"/overview", 200, `{"taskmanagers":"one"}`},
		{"/jobs", 201, `{"jobs":[]}`},
		{"/jobs", 404, `{"errors":[]}`},
		{"/nope", 200, `{}`},
	} {
		require.Error(t, sp.Check(get(tc.path), tc.status, h, []byte(tc.body)), "%s %d %s", tc.path, tc.status, tc.body)
	}
	require.Error(t, sp.Check(get("/jobs"), 200, http.Header{"Content-Type": {"text/plain"}}, []byte(`{"jobs":[]}`)))
}
