package strom

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/restclient/restclienttest"
	"github.com/strom-dev/strom/internal/streamgraph"
)

// pipeline builds a small job on env and returns its output.
func pipeline(env *Environment) *Collected[int] {
	doubled := Map(FromElements(env, 1, 2, 3), func(v int) int { return 2 * v }).Name("Double").UID("double")
	return Collect(Rebalance(doubled))
}

func fakeCluster(t *testing.T) *restclienttest.Cluster {
	t.Helper()
	fake := restclienttest.New()
	t.Cleanup(fake.Close)
	return fake
}

func selfSHA(t *testing.T) string {
	exe, err := os.Executable()
	require.NoError(t, err)
	data, err := os.ReadFile(exe)
	require.NoError(t, err)
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// A job given a cluster submits itself: Flink's multipart with the
// request first, the JobGraph that the embedded run would have used, and
// this very executable; its arguments and savepoint settings go along. It
// runs nothing in this process, and Wait reports the cluster's result.
func TestSubmitSendsJobGraphBinaryAndArgs(t *testing.T) {
	fake := fakeCluster(t)
	cfg := Config{Cluster: fake.URL, Parallelism: 2, FromSavepoint: "file:///sp/savepoint-1", AllowNonRestoredState: true,
		CheckpointInterval: time.Second, CheckpointDir: "file:///ck", RestartStrategy: FixedDelayRestart(3, time.Second)}
	env := NewEnvironment(cfg)
	out := pipeline(env)
	jc, err := env.ExecuteAsync(context.Background(), "doubler")
	require.NoError(t, err)
	defer jc.Close()

	fake.Mu.Lock()
	require.Len(t, fake.Submissions, 1)
	s := fake.Submissions[0]
	fake.Mu.Unlock()
	require.Equal(t, []string{"request", "file_0", "file_1"}, s.PartOrder)
	args := []any{}
	for _, a := range os.Args[1:] {
		args = append(args, a)
	}
	require.Equal(t, args, s.Request["programArgsList"], "every process of the job runs main with the same arguments")
	require.Equal(t, "file:///sp/savepoint-1", s.Request["savepointPath"])
	require.Equal(t, true, s.Request["allowNonRestoredState"])
	require.Equal(t, selfSHA(t), s.BinarySHA256, "the program uploads its own executable")

	var sent jobgraph.JobGraph
	require.NoError(t, json.Unmarshal(s.JobGraph, &sent))
	want, err := streamgraph.BuildJobGraph(pipelineGraph(t), streamgraph.Options{JobName: "doubler", DefaultParallelism: 2,
		MaxParallelism: cfg.EnsureDefaults().MaxParallelism})
	require.NoError(t, err)
	// The settings a JobManager runs it with, which it cannot take from
	// code it never runs, travel with the graph.
	settings, err := jobcode.FromSettings(sent.Settings)
	require.NoError(t, err)
	require.Equal(t, cfg.EnsureDefaults().checkpointing(), settings.Checkpoint)
	require.Equal(t, cfg.RestartStrategy.strategy(true), settings.Restart)
	sent.Settings = nil
	require.Equal(t, *want, sent, "the JobGraph is the one an embedded run builds")

	require.Len(t, jc.JobID(), 32)
	res, err := jc.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, jc.JobID(), res.JobID)
	require.Equal(t, "doubler", res.JobName)
	require.Equal(t, 1234*time.Millisecond, res.Duration)
	require.Equal(t, []OperatorResult{{Name: "Source: numbers -> Map", Parallelism: 2, RecordsOut: 42}}, res.Operators)
	require.Zero(t, out.Len(), "nothing ran in this process")
	select {
	case <-jc.Done():
	default:
		t.Fatal("Done is closed once Wait saw the end")
	}
}

func pipelineGraph(t *testing.T) *streamgraph.StreamGraph {
	env := NewEnvironment()
	pipeline(env)
	require.NoError(t, env.err)
	return env.graph
}

func submitted(t *testing.T, fake *restclienttest.Cluster, ctx context.Context, cfg Config) (*JobClient, *restclienttest.Job) {
	t.Helper()
	cfg.Cluster = fake.URL
	env := NewEnvironment(cfg)
	pipeline(env)
	jc, err := env.ExecuteAsync(ctx, "doubler")
	require.NoError(t, err)
	t.Cleanup(jc.Close)
	fake.Mu.Lock()
	defer fake.Mu.Unlock()
	j := fake.Jobs[jc.JobID()]
	require.NotNil(t, j)
	j.RunningPolls = 1 << 30 // runs until stopped
	return jc, j
}

// The JobClient of a submitted job does over REST what it does embedded.
func TestRemoteJobClient(t *testing.T) {
	ctx := context.Background()
	fake := fakeCluster(t)

	jc, j := submitted(t, fake, ctx, Config{SavepointDir: "file:///sps"})
	require.Equal(t, "RUNNING", jc.Status())
	require.Equal(t, map[string]int{"RUNNING": 2}, jc.TaskStates())
	require.Equal(t, int64(42), jc.Metrics()[0].RecordsOut)
	p, err := jc.TriggerSavepoint(ctx, "")
	require.NoError(t, err)
	require.Equal(t, "file:///sps/savepoint-"+j.ID[:6]+"-1", p, "Config.SavepointDir is the default directory")
	p, err = jc.StopWithSavepoint(ctx, "file:///other", false)
	require.NoError(t, err)
	require.Equal(t, "file:///other/savepoint-"+j.ID[:6]+"-2", p)
	_, err = jc.Wait(ctx)
	require.NoError(t, err, "a job stopped with a savepoint ends FINISHED")

	// Without Config.SavepointDir the cluster's default applies.
	jc2, _ := submitted(t, fake, ctx, Config{})
	_, err = jc2.TriggerSavepoint(ctx, "")
	require.ErrorContains(t, err, "state.savepoints.dir is not set")

	// Cancel, then Wait and Done see the end.
	jc2.Cancel()
	_, err = jc2.Wait(ctx)
	require.ErrorIs(t, err, ErrJobCanceled)
	<-jc2.Done()

	// Done closes by itself when the job ends.
	jc3, j3 := submitted(t, fake, ctx, Config{})
	done := jc3.Done()
	fake.Mu.Lock()
	j3.State = "FAILED"
	j3.Failure = `operator "Double" (subtask 1/2): boom`
	fake.Mu.Unlock()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not close after the job ended")
	}
	_, err = jc3.Wait(ctx)
	require.ErrorIs(t, err, ErrJobFailed)
	require.ErrorContains(t, err, `operator "Double" (subtask 1/2): boom`)

	// Close cancels a job that still runs, as embedded.
	jc4, j4 := submitted(t, fake, ctx, Config{})
	jc4.Close()
	fake.Mu.Lock()
	require.Equal(t, "CANCELED", j4.State)
	fake.Mu.Unlock()
}

// The end of ExecuteAsync's context cancels the job on the cluster, and
// Wait says so with the context's cause.
func TestRemoteJobCancelledByContext(t *testing.T) {
	fake := fakeCluster(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	jc, j := submitted(t, fake, ctx, Config{})
	stop := errors.New("operator pressed stop")
	cancel(stop)
	require.Eventually(t, func() bool {
		fake.Mu.Lock()
		defer fake.Mu.Unlock()
		return j.State == "CANCELED"
	}, 10*time.Second, 5*time.Millisecond)
	_, err := jc.Wait(context.Background())
	require.ErrorIs(t, err, ErrJobCanceled)
	require.ErrorIs(t, err, stop)
}

// In plan mode Execute prints the JobGraph as JSON and exits 0, running
// nothing and submitting nothing, even with a cluster set.
func TestPlanModePrintsTheJobGraph(t *testing.T) {
	fake := fakeCluster(t)
	t.Setenv(PrintPlanEnv, "1")
	var buf bytes.Buffer
	exited := -1
	oldOut, oldExit := planOutput, exitProcess
	planOutput, exitProcess = &buf, func(code int) { exited = code }
	defer func() { planOutput, exitProcess = oldOut, oldExit }()

	env := NewEnvironment(Config{Cluster: fake.URL, Parallelism: 2})
	out := pipeline(env)
	_, err := env.Execute(context.Background(), "doubler")
	require.ErrorIs(t, err, errPlanPrinted)
	require.Equal(t, 0, exited)
	require.Zero(t, out.Len())
	fake.Mu.Lock()
	require.Empty(t, fake.Submissions)
	fake.Mu.Unlock()

	var jg jobgraph.JobGraph
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&jg))
	want, err := streamgraph.BuildJobGraph(pipelineGraph(t), streamgraph.Options{JobName: "doubler", DefaultParallelism: 2,
		MaxParallelism: env.Config().MaxParallelism})
	require.NoError(t, err)
	require.NotNil(t, jg.Settings, "the plan carries the job's settings, for /jars/:id/run")
	jg.Settings = nil
	require.Equal(t, *want, jg)
}
