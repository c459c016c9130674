package restclient_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/restclient"
	"github.com/strom-dev/strom/internal/restclient/restclienttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newClient(t *testing.T) (*restclient.Client, *restclienttest.Cluster) {
	t.Helper()
	fake := restclienttest.New()
	t.Cleanup(fake.Close)
	c, err := restclient.New(fake.URL)
	require.NoError(t, err)
	c.PollInterval = time.Millisecond
	t.Cleanup(c.CloseIdleConnections)
	return c, fake
}

func TestAddress(t *testing.T) {
	t.Setenv(restclient.EnvJobManager, "")
	require.Equal(t, restclient.DefaultAddress, restclient.Address(""))
	t.Setenv(restclient.EnvJobManager, "http://jm:9000")
	require.Equal(t, "http://jm:9000", restclient.Address(""))
	require.Equal(t, "http://flag:1", restclient.Address("http://flag:1"), "the flag wins over the environment")

	c, err := restclient.New("jm.example:8081")
	require.NoError(t, err)
	require.Equal(t, "http://jm.example:8081", c.URL(), "host:port means http")
	_, err = restclient.New("ftp://jm")
	require.ErrorContains(t, err, `scheme "ftp"`)
}

func TestJobsAndDetails(t *testing.T) {
	ctx := context.Background()
	c, fake := newClient(t)
	j := fake.AddJob("wordcount")

	jobs, err := c.Jobs(ctx)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	require.Equal(t, restclient.JobOverview{ID: j.ID, Name: "wordcount", State: "RUNNING", StartTime: j.Start.UnixMilli(), EndTime: -1,
		Duration: 1000, LastModification: j.Start.UnixMilli(), Tasks: map[string]int{"running": 1}}, jobs[0])

	d, err := c.Job(ctx, j.ID)
	require.NoError(t, err)
	require.Equal(t, "RUNNING", d.State)
	require.Equal(t, map[string]int{"RUNNING": 2}, d.StatusCounts)
	require.Equal(t, int64(42), d.Vertices[0].Metrics.WriteRecords)
}

func TestUnknownJob(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t)
	const id = "0123456789abcdef0123456789abcdef"
	for name, call := range map[string]func() error{
		"job":        func() error { _, err := c.Job(ctx, id); return err },
		"cancel":     func() error { return c.CancelJob(ctx, id) },
		"result":     func() error { _, err := c.JobResult(ctx, id); return err },
		"savepoint":  func() error { _, err := c.TriggerSavepoint(ctx, id, "/sp"); return err },
		"stop":       func() error { _, err := c.StopWithSavepoint(ctx, id, "/sp", false); return err },
		"checkpoint": func() error { _, err := c.TriggerCheckpoint(ctx, id); return err },
	} {
		err := call()
		require.ErrorIs(t, err, restclient.ErrUnknownJob, name)
		require.ErrorContains(t, err, "unknown job id "+id, name)
		require.ErrorContains(t, err, "Job "+id+" not found", "%s: the server's text is surfaced", name)
	}
}

func TestUnreachableCluster(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	c, err := restclient.New(addr)
	require.NoError(t, err)
	_, err = c.Jobs(context.Background())
	var ue *restclient.UnreachableError
	require.ErrorAs(t, err, &ue)
	require.ErrorContains(t, err, "cannot reach the JobManager at "+addr+": ")
}

func TestServerErrorTextAndNonJSONErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/jobs/overview" {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"errors":["dispatcher is gone","try later"]}`))
			return
		}
		http.Error(w, "bad gateway from a proxy", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, err := restclient.New(srv.URL)
	require.NoError(t, err)
	defer c.CloseIdleConnections()

	_, err = c.Jobs(context.Background())
	var apiErr *restclient.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusInternalServerError, apiErr.Status)
	require.Equal(t, []string{"dispatcher is gone", "try later"}, apiErr.Errors)
	require.EqualError(t, err, "listing jobs: GET /jobs/overview: 500 Internal Server Error: dispatcher is gone; try later")

	_, err = c.Binaries(context.Background())
	require.ErrorContains(t, err, "502 Bad Gateway: bad gateway from a proxy")
}

func TestCancelAndWait(t *testing.T) {
	ctx := context.Background()
	c, fake := newClient(t)
	j := fake.AddJob("j")
	j.RunningPolls = 1000
	require.NoError(t, c.CancelJob(ctx, j.ID))
	r, err := c.WaitJob(ctx, j.ID)
	require.NoError(t, err)
	require.Equal(t, "CANCELED", r.ApplicationStatus)
	err = c.CancelJob(ctx, j.ID)
	require.ErrorContains(t, err, "409 Conflict: Job "+j.ID+" has already ended (CANCELED).")

	f := fake.AddJob("f")
	f.RunningPolls, f.EndState, f.Failure = 3, "FAILED", "operator \"Map\" (subtask 1/2): boom"
	before := fake.Requests["GET /jobs/{jobid}/execution-result"]
	r, err = c.WaitJob(ctx, f.ID)
	require.NoError(t, err)
	require.Equal(t, "FAILED", r.ApplicationStatus)
	require.Equal(t, f.Failure, r.Failure())
	require.Equal(t, 1234*time.Millisecond, r.Runtime())
	require.Equal(t, 4, fake.Requests["GET /jobs/{jobid}/execution-result"]-before, "polled until the job ended")

	w := fake.AddJob("w")
	w.RunningPolls = 1 << 30
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = c.WaitJob(wctx, w.ID)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestSavepointStopAndDispose(t *testing.T) {
	ctx := context.Background()
	c, fake := newClient(t)
	j := fake.AddJob("j")

	p, err := c.TriggerSavepoint(ctx, j.ID, "file:///sp")
	require.NoError(t, err)
	require.Equal(t, "file:///sp/savepoint-"+j.ID[:6]+"-1", p)
	require.Equal(t, 2, fake.Requests["GET /jobs/{jobid}/savepoints/{trigger}"], "polled past IN_PROGRESS")

	_, err = c.TriggerSavepoint(ctx, j.ID, "")
	require.ErrorContains(t, err, "savepoint of job "+j.ID+" failed: No savepoint directory was given")
	fake.DefaultSavepointDir = "file:///default"
	p2, err := c.TriggerSavepoint(ctx, j.ID, "")
	require.NoError(t, err)
	require.Equal(t, "file:///default/savepoint-"+j.ID[:6]+"-2", p2)

	sp, err := c.StopWithSavepoint(ctx, j.ID, "file:///stop", true)
	require.NoError(t, err)
	require.Equal(t, "file:///stop/savepoint-"+j.ID[:6]+"-3", sp)
	require.Equal(t, "FINISHED", j.State)

	require.NoError(t, c.DisposeSavepoint(ctx, p))
	require.Equal(t, []string{p}, fake.Disposed)
	err = c.DisposeSavepoint(ctx, p)
	require.ErrorContains(t, err, `disposing savepoint "`+p+`" failed: savepoint `+p+`: no _metadata`)
}

func TestOperationTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			_, _ = w.Write([]byte(`{"request-id":"t1"}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":{"id":"IN_PROGRESS"}}`))
	}))
	defer srv.Close()
	c, err := restclient.New(srv.URL)
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	c.PollInterval, c.OperationTimeout = time.Millisecond, 30*time.Millisecond
	err = c.DisposeSavepoint(context.Background(), "/sp")
	require.ErrorContains(t, err, "did not complete within 30ms")
}

func TestCheckpoints(t *testing.T) {
	ctx := context.Background()
	c, fake := newClient(t)
	j := fake.AddJob("j")
	st, err := c.Checkpoints(ctx, j.ID)
	require.NoError(t, err)
	require.Equal(t, 7, st.Counts.Completed)
	require.Equal(t, int64(7), st.Latest.Completed.ID)

	// The fake, like Flink 1.16 and internal/rest, has no manual trigger.
	_, err = c.TriggerCheckpoint(ctx, j.ID)
	require.ErrorIs(t, err, restclient.ErrNotSupported)
	require.ErrorContains(t, err, "not supported by this cluster")
}

// A cluster with Flink 1.17's manual checkpoint trigger.
func TestTriggerCheckpoint(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"jid":"x","state":"RUNNING"}`)) })
	mux.HandleFunc("POST /jobs/{id}/checkpoints", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"request-id":"t9"}`)) })
	mux.HandleFunc("GET /jobs/{id}/checkpoints/t9", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"status":{"id":"COMPLETED"},"operation":{"checkpointId":12}}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := restclient.New(srv.URL)
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	id, err := c.TriggerCheckpoint(context.Background(), "x")
	require.NoError(t, err)
	require.Equal(t, int64(12), id)
}

func sha(t *testing.T, p string) string {
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func TestUploadAndRunBinary(t *testing.T) {
	ctx := context.Background()
	c, fake := newClient(t)
	bin := filepath.Join(t.TempDir(), "myjob")
	require.NoError(t, os.WriteFile(bin, []byte("\x7fELF not really a job"), 0o755))

	id, err := c.UploadBinary(ctx, bin)
	require.NoError(t, err)
	require.Equal(t, sha(t, bin), fake.Binaries[id], "the binary arrives intact")
	require.Contains(t, id, "_myjob")

	fake.Savepoints["file:///sp/savepoint-1"] = true
	jobID, err := c.RunBinary(ctx, id, restclient.RunOptions{Args: []string{"--rate", "10"}, Parallelism: 3,
		SavepointPath: "file:///sp/savepoint-1", AllowNonRestoredState: true})
	require.NoError(t, err)
	j := fake.Jobs[jobID]
	require.Equal(t, []string{"--rate", "10"}, j.Args)
	require.Equal(t, 3, j.Parallelism)
	require.Equal(t, "file:///sp/savepoint-1", j.SavepointPath)
	require.True(t, j.AllowNonRestoredState)

	_, err = c.RunBinary(ctx, id, restclient.RunOptions{SavepointPath: "file:///nope"})
	require.ErrorContains(t, err, "400 Bad Request: Savepoint file:///nope does not exist.")
	_, err = c.RunBinary(ctx, "nope", restclient.RunOptions{})
	require.ErrorContains(t, err, `unknown job binary nope`)
	_, err = c.UploadBinary(ctx, filepath.Join(t.TempDir(), "missing"))
	require.ErrorContains(t, err, "no such file")

	bins, err := c.Binaries(ctx)
	require.Error(t, err, "the fake serves no GET /jars: a 405 is an error, not an empty list")
	require.Nil(t, bins)
}

func TestSubmitJobSendsFlinksMultipart(t *testing.T) {
	ctx := context.Background()
	c, fake := newClient(t)
	bin := filepath.Join(t.TempDir(), "wordcount")
	require.NoError(t, os.WriteFile(bin, make([]byte, 3<<20), 0o755)) // bigger than a pipe's buffer
	jg := &jobgraph.JobGraph{JobName: "wordcount", MaxParallelism: 128}

	id, err := c.SubmitJob(ctx, restclient.Submission{JobGraph: jg, Binary: bin, Options: restclient.RunOptions{
		Args: []string{"-in", "x"}, JobID: "00112233445566778899aabbccddeeff", SavepointPath: "file:///sp/1", AllowNonRestoredState: true}})
	require.NoError(t, err)
	require.Equal(t, "00112233445566778899aabbccddeeff", id)
	require.Len(t, fake.Submissions, 1)
	s := fake.Submissions[0]
	require.Equal(t, []string{"request", "file_0", "file_1"}, s.PartOrder)
	require.Equal(t, map[string]any{"jobGraphFileName": "jobgraph.json", "jobJarFileNames": []any{"wordcount"},
		"jobId": "00112233445566778899aabbccddeeff", "programArgsList": []any{"-in", "x"}, "savepointPath": "file:///sp/1",
		"allowNonRestoredState": true}, s.Request)
	var back jobgraph.JobGraph
	require.NoError(t, json.Unmarshal(s.JobGraph, &back))
	require.Equal(t, *jg, back)
	require.Equal(t, sha(t, bin), s.BinarySHA256)

	_, err = c.SubmitJob(ctx, restclient.Submission{JobGraph: jg, Binary: "/nonexistent/bin"})
	require.ErrorContains(t, err, `submitting job "wordcount": the job binary: `)
}

func TestContextCancelledIsNotUnreachable(t *testing.T) {
	c, fake := newClient(t)
	fake.AddJob("j")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Jobs(ctx)
	require.ErrorIs(t, err, context.Canceled)
	var ue *restclient.UnreachableError
	require.False(t, errors.As(err, &ue))
}

// WaitJob outlasts a JobManager that is briefly away (restarting on the
// same address) and gives up on one that stays away.
func TestWaitJobOutlastsABriefOutage(t *testing.T) {
	answer := func(status string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if status == "COMPLETED" {
				_, _ = w.Write([]byte(`{"status":{"id":"COMPLETED"},"job-execution-result":{"id":"j","application-status":"SUCCEEDED","net-runtime":5}}`))
				return
			}
			_, _ = w.Write([]byte(`{"status":{"id":"IN_PROGRESS"}}`))
		})
	}
	first := httptest.NewServer(answer("IN_PROGRESS"))
	addr := first.Listener.Addr().String()
	c, err := restclient.New(first.URL)
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	c.PollInterval = 5 * time.Millisecond

	type result struct {
		r   *restclient.JobResult
		err error
	}
	got := make(chan result, 1)
	go func() {
		r, err := c.WaitJob(context.Background(), "j")
		got <- result{r, err}
	}()
	time.Sleep(30 * time.Millisecond)
	first.Close() // the JobManager goes away...
	time.Sleep(50 * time.Millisecond)
	ln, err := net.Listen("tcp", addr) // ...and comes back on its address
	require.NoError(t, err)
	second := httptest.NewUnstartedServer(answer("COMPLETED"))
	second.Listener = ln
	second.Start()
	defer second.Close()
	select {
	case res := <-got:
		require.NoError(t, res.err)
		require.Equal(t, "SUCCEEDED", res.r.ApplicationStatus)
	case <-time.After(10 * time.Second):
		t.Fatal("WaitJob did not return after the JobManager came back")
	}

	second.Close()
	c.ReconnectTimeout = 50 * time.Millisecond
	_, err = c.WaitJob(context.Background(), "j")
	require.ErrorContains(t, err, "cannot reach the JobManager at http://"+addr)
}
