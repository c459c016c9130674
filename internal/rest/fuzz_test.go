package rest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzServer throws random methods, paths, content types and bodies at
// the API and requires: no panic, no 5xx, a JSON answer that the spec
// accepts, and for every 4xx a non-empty {"errors": [...]}. The seeds run
// in plain `go test`; `go test -fuzz FuzzServer ./internal/rest` explores.
func FuzzServer(f *testing.F) {
	sp := loadSpec(f)
	fake := newFakeCluster(t0)
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Cluster: fake, Logger: quietLogger, MaxBodyBytes: 4096, MaxUploadBytes: 8192})
	require.NoError(f, err)
	f.Cleanup(func() { require.NoError(f, s.Close()) })
	h := s.Handler()

	job := "/jobs/" + jobA
	vtx := job + "/vertices/" + VertexID(1)
	mp, mpType := upload("jarfile", "j", elf[:100])
	sub, subType := submission(part{field: "request", data: `{"jobGraphFileName":"g","jobJarFileNames":["b"]}`},
		part{field: "f0", file: "g", data: `{"jobName":"x","vertices":[{"id":0,"parallelism":1}]}`}, part{field: "f1", file: "b", data: string(elf[:64])})
	for _, seed := range []struct {
		method, path, ctype string
		body                []byte
	}{
		{"GET", "/config", "", nil},
		{"GET", "/overview", "", nil},
		{"GET", "/jobs", "", nil},
		{"GET", "/jobs/overview", "", nil},
		{"GET", job, "", nil},
		{"GET", "/v1" + job, "", nil},
		{"PATCH", job + "?mode=cancel", "", nil},
		{"PATCH", job + "?mode=%zz", "", nil},
		{"GET", job + "/plan", "", nil},
		{"GET", job + "/exceptions?maxExceptions=99999999999999999999", "", nil},
		{"GET", job + "/config", "", nil},
		{"GET", job + "/checkpoints", "", nil},
		{"GET", job + "/checkpoints/config", "", nil},
		{"GET", job + "/checkpoints/details/7", "", nil},
		{"GET", job + "/checkpoints/details/9223372036854775808", "", nil},
		{"GET", vtx, "", nil},
		{"GET", vtx + "/backpressure", "", nil},
		{"GET", vtx + "/watermarks", "", nil},
		{"POST", job + "/savepoints", "application/json", []byte(`{"target-directory":"/sp","cancel-job":false}`)},
		{"POST", job + "/savepoints", "application/json", []byte(`{"target-directory":`)},
		{"POST", job + "/savepoints", "application/json", []byte(`{"triggerId":"` + strings.Repeat("f", 32) + `"}`)},
		{"GET", job + "/savepoints/" + strings.Repeat("f", 32), "", nil},
		{"POST", job + "/stop", "application/json", []byte(`{"drain":true}`)},
		{"POST", "/savepoint-disposal", "application/json", []byte(`{"savepoint-path":"/x"}`)},
		{"POST", "/savepoint-disposal", "application/json", []byte(`null`)},
		{"GET", "/savepoint-disposal/" + strings.Repeat("0", 32), "", nil},
		{"GET", "/taskmanagers", "", nil},
		{"GET", "/taskmanagers/" + tmID, "", nil},
		{"GET", "/jars", "", nil},
		{"POST", "/jars/upload", mpType, mp},
		{"POST", "/jobs", subType, sub},
		{"POST", "/jobs", subType, sub[:len(sub)/2]},
		{"POST", "/jars/upload", "multipart/form-data; boundary=", []byte("--\r\n")},
		{"POST", "/jars/upload", mpType, append(mp, make([]byte, 9000)...)},
		{"GET", "/jars/x/plan?parallelism=-5", "", nil},
		{"POST", "/jars/x/run", "application/json", []byte(`{"programArgsList":[1]}`)},
		{"DELETE", "/jars/..", "", nil},
		{"DELETE", "/jobs/" + jobA, "", nil},
		{"OPTIONS", "/", "", nil},
		{"GET", "//", "", nil},
		{"GET", "/jobs/%2e%2e/x", "", nil},
		{"GET", "/jobs/" + jobA + "/", "", nil},
		{"BREW", "/coffee", "text/plain", []byte("☕")},
		{"POST", job + "/savepoints", "application/json", []byte(strings.Repeat("[", 5000))},
	} {
		f.Add(seed.method, seed.path, seed.ctype, seed.body)
	}

	f.Fuzz(func(t *testing.T, method, path, ctype string, body []byte) {
		req, err := http.NewRequest(method, "http://strom.test"+path, strings.NewReader(string(body)))
		if err != nil {
			return // not an HTTP request at all (bad method token or URL)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := httptest.NewRecorder()
		served := make(chan struct{})
		go func() {
			defer close(served)
			h.ServeHTTP(rec, req)
		}()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s %q hangs", method, path)
		}
		res := rec.Result()
		data := rec.Body.Bytes()
		require.Less(t, res.StatusCode, 500, "%s %q: %d %s", method, path, res.StatusCode, data)
		require.True(t, json.Valid(data), "%s %q: not JSON: %s", method, path, data)
		if res.StatusCode >= 400 {
			var e struct{ Errors []string }
			require.NoError(t, json.Unmarshal(data, &e), "%s %q: %s", method, path, data)
			require.NotEmpty(t, e.Errors, "%s %q: %s", method, path, data)
		}
		// Validate as the spec names the path (without /v1).
		vreq := req.Clone(req.Context())
		u := *req.URL
		u.Path = strings.TrimPrefix(u.Path, "/v1")
		u.RawPath = ""
		vreq.URL = &url.URL{Path: u.Path, RawQuery: u.RawQuery}
		require.NoError(t, sp.check(vreq, res.StatusCode, res.Header, data), "%s %q: %d %s", method, path, res.StatusCode, data)
	})
}
