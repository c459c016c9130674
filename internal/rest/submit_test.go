package rest

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/jobgraph"
)

// part is one part of a submission: a form field (file == "") or a file.
type part struct{ field, file, data string }

func submission(parts ...part) ([]byte, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		if p.file == "" {
			_ = w.WriteField(p.field, p.data)
			continue
		}
		fw, _ := w.CreateFormFile(p.field, p.file)
		_, _ = fw.Write([]byte(p.data))
	}
	_ = w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

func requestPart(t *testing.T, req map[string]any) part {
	data, err := json.Marshal(req)
	require.NoError(t, err)
	return part{field: "request", data: string(data)}
}

func jobGraphPart(t *testing.T, jg *jobgraph.JobGraph) part {
	data, err := json.Marshal(jg)
	require.NoError(t, err)
	return part{field: "file_0", file: "job.json", data: string(data)}
}

var binaryPart = part{field: "file_1", file: "myjob", data: string(elf)}

func TestSubmitJob(t *testing.T) {
	f, c, _, _ := start(t)
	jg := &jobgraph.JobGraph{JobName: "wordcount", MaxParallelism: 128, Vertices: []*jobgraph.JobVertex{
		{ID: 0, Name: "Source", Parallelism: 2, Operators: []jobgraph.OperatorInfo{{Name: "Source: lines"}}},
		{ID: 1, Name: "Count", Parallelism: 2, Operators: []jobgraph.OperatorInfo{{Name: "Count"}, {Name: "Sink"}}},
	}, Edges: []*jobgraph.JobEdge{{StreamEdge: 1, From: 0, To: 1, Partition: jobgraph.Hash}}}
	want := strings.Repeat("d", 32)
	req := map[string]any{"jobGraphFileName": "job.json", "jobJarFileNames": []string{"myjob"},
		"jobId": want, "programArgsList": []string{"--input", "x"}, "savepointPath": "file:///sp/1", "allowNonRestoredState": true}
	body, ct := submission(requestPart(t, req), jobGraphPart(t, jg), binaryPart)
	code, data := c.do("POST", "/jobs", body, "Content-Type", ct)
	require.Equal(t, 202, code, "%s", data)
	require.JSONEq(t, `{"jobUrl": "/jobs/`+want+`"}`, string(data))

	f.mu.Lock()
	require.Len(t, f.submissions, 1)
	sub := f.submissions[0]
	require.Equal(t, elf, f.blobs[sub.BinaryID], "the binary is stored byte for byte")
	f.mu.Unlock()
	require.Equal(t, jg, sub.JobGraph)
	require.Equal(t, RunOptions{Args: []string{"--input", "x"}, JobID: want, SavepointPath: "file:///sp/1", AllowNonRestoredState: true}, sub.Options)
	j := c.json("GET", "/jobs/"+want, nil, 200)
	require.Equal(t, "wordcount", j["name"])
	require.Equal(t, "Source: lines", j["plan"].(map[string]any)["nodes"].([]any)[0].(map[string]any)["description"])

	// The files may come in either order, after the request.
	body, ct = submission(requestPart(t, map[string]any{"jobGraphFileName": "job.json", "jobJarFileNames": []string{"myjob"}}), binaryPart, jobGraphPart(t, jg))
	code, data = c.do("POST", "/jobs", body, "Content-Type", ct)
	require.Equal(t, 202, code, "%s", data)
	require.Len(t, c.json("GET", "/jars", nil, 200)["files"], 2)
}

func TestSubmitJobRefused(t *testing.T) {
	f, c, _, _ := start(t, func(cfg *Config) { cfg.MaxBodyBytes = 2048; cfg.MaxUploadBytes = 64 << 10 })
	jg := &jobgraph.JobGraph{JobName: "j", Vertices: []*jobgraph.JobVertex{{ID: 0, Name: "Source", Parallelism: 1}}}
	ok := map[string]any{"jobGraphFileName": "job.json", "jobJarFileNames": []string{"myjob"}}
	existing := map[string]any{"jobGraphFileName": "job.json", "jobJarFileNames": []string{"myjob"}, "jobId": jobA}
	for _, tc := range []struct {
		name   string
		parts  []part
		status int
	}{
		{"request not first", []part{jobGraphPart(t, jg), requestPart(t, ok), binaryPart}, 400},
		{"no request", nil, 400},
		{"no JobGraph", []part{requestPart(t, ok), binaryPart}, 400},
		{"no binary", []part{requestPart(t, ok), jobGraphPart(t, jg)}, 400},
		{"unknown field", []part{requestPart(t, map[string]any{"jobGraphFileName": "job.json", "jobJarFileNames": []string{"myjob"}, "x": 1})}, 400},
		{"two binaries", []part{requestPart(t, map[string]any{"jobGraphFileName": "job.json", "jobJarFileNames": []string{"a", "b"}})}, 400},
		{"artifacts", []part{requestPart(t, map[string]any{"jobGraphFileName": "job.json", "jobJarFileNames": []string{"myjob"},
			"jobArtifactFileNames": []map[string]string{{"entryName": "a", "fileName": "a"}}})}, 400},
		{"bad job id", []part{requestPart(t, map[string]any{"jobGraphFileName": "job.json", "jobJarFileNames": []string{"myjob"}, "jobId": "x"})}, 400},
		{"unnamed file", []part{requestPart(t, ok), binaryPart, {field: "file_9", file: "other", data: "?"}}, 400},
		{"binary twice", []part{requestPart(t, ok), binaryPart, binaryPart}, 400},
		{"malformed JobGraph after the binary", []part{requestPart(t, ok), binaryPart, {field: "file_0", file: "job.json", data: `{"vertices": 5}`}}, 400},
		{"JobGraph over MaxBodyBytes", []part{requestPart(t, ok), binaryPart, {field: "file_0", file: "job.json", data: `{"jobName": "` + strings.Repeat("n", 4096) + `"}`}}, 413},
		{"not a binary", []part{requestPart(t, ok), jobGraphPart(t, jg), {field: "file_1", file: "myjob", data: "text"}}, 400},
		{"binary over MaxUploadBytes", []part{requestPart(t, ok), jobGraphPart(t, jg), {field: "file_1", file: "myjob", data: string(elf) + strings.Repeat("x", 100<<10)}}, 413},
		{"the cluster refuses the graph", []part{requestPart(t, ok), binaryPart, jobGraphPart(t, &jobgraph.JobGraph{JobName: "empty"})}, 400},
		{"the job id is taken", []part{requestPart(t, existing), binaryPart, jobGraphPart(t, jg)}, 409},
	} {
		body, ct := submission(tc.parts...)
		code, data := c.do("POST", "/jobs", body, "Content-Type", ct)
		require.Equal(t, tc.status, code, "%s: %s", tc.name, data)
		require.Contains(t, string(data), `"errors"`, tc.name)
		f.mu.Lock()
		require.Empty(t, f.binaries, "%s: a refused submission keeps no binary", tc.name)
		require.Empty(t, f.submissions, tc.name)
		f.mu.Unlock()
	}
	code, data := c.do("POST", "/jobs", []byte(`{"jobGraphFileName": "x"}`), "Content-Type", "application/json")
	require.Equal(t, 400, code, "not multipart: %s", data)
	require.Len(t, c.json("GET", "/jobs", nil, 200)["jobs"], 2)
}
