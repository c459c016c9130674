package process_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests drive the strom CLI (run, list, info, checkpoint,
// savepoint, stop, cancel) as a user would, against a JobManager and
// TaskManagers that are real processes, with seqjob as the job binary.

// cliResult is what one strom CLI invocation printed and how it ended.
type cliResult struct {
	stdout, stderr string
	err            error // nil: exit 0
}

func (r cliResult) String() string {
	return "stdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// strom runs the strom binary with args (and env added to the test's
// environment), bounded by 45 s so that a hanging command fails the test
// instead of the whole run.
func strom(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.strom, args...)
	// STROM_JOBMANAGER of the outer environment must not leak in: the
	// tests say where the cluster is themselves.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STROM_JOBMANAGER=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "strom %v did not end within 45s\n%s\n%s", args, stdout.String(), stderr.String())
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// mustStrom is strom that requires exit 0.
func mustStrom(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	r := strom(t, env, args...)
	require.NoError(t, r.err, "strom %v\n%s", args, r)
	return r
}

var (
	jobIDLine     = regexp.MustCompile(`Job has been submitted with JobID (\S+)`)
	savepointLine = regexp.MustCompile(`Savepoint completed\. Path: (\S+)`)
)

func jobIDOf(t *testing.T, r cliResult) string {
	t.Helper()
	m := jobIDLine.FindStringSubmatch(r.stdout)
	require.NotNil(t, m, "no job id printed\n%s", r)
	return m[1]
}

func savepointOf(t *testing.T, r cliResult) string {
	t.Helper()
	m := savepointLine.FindStringSubmatch(r.stdout)
	require.NotNil(t, m, "no savepoint path printed\n%s", r)
	return m[1]
}

// waitListed waits until `strom list -a` shows job in state, and returns
// that listing.
func waitListed(t *testing.T, c *cluster, job, state string) string {
	t.Helper()
	want := job + " : seqjob (" + state + ")"
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := mustStrom(t, nil, "list", "-a", "--jobmanager", c.rest)
		if strings.Contains(r.stdout, want) {
			return r.stdout
		}
		if time.Now().After(deadline) {
			t.Fatalf("strom list -a shows no %q after 20s:\n%s\n%s", want, r, c.jm.stderr())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitCompletedCheckpoints waits until job has completed at least n
// checkpoints (by the REST API's checkpoint counts).
func waitCompletedCheckpoints(t *testing.T, c *cluster, job string, n int) {
	t.Helper()
	var stats struct {
		Counts struct {
			Completed int `json:"completed"`
		} `json:"counts"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.get("/jobs/"+job+"/checkpoints", &stats)
		if err == nil && stats.Counts.Completed >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %d checkpoints completed after 30s, want %d (%v)\n%s", job, stats.Counts.Completed, n, err, c.jm.stderr())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The CLI end to end against a cluster of processes: submit detached
// (--jobmanager and $STROM_JOBMANAGER), list, info, checkpoint,
// savepoint and dispose, cancel; attached run of a finishing job; and the
// errors a user meets.
func TestCLIAgainstProcessCluster(t *testing.T) {
	c := startCluster(t, 2, 2)
	envJM := []string{"STROM_JOBMANAGER=" + c.rest}

	// A long, slow job, so that it is surely running for what follows.
	long := newSeqJob(t, 10_000_000, 4, 2, "--rate", "500")
	r := mustStrom(t, nil, append([]string{"run", "-d", "--jobmanager", c.rest, bins.seqjob}, long.args...)...)
	job := jobIDOf(t, r)
	listing := waitListed(t, c, job, "RUNNING")
	require.Contains(t, listing, "Running/Restarting Jobs")

	// $STROM_JOBMANAGER names the cluster as well as --jobmanager does.
	r = mustStrom(t, envJM, "list")
	require.Contains(t, r.stdout, job+" : seqjob (RUNNING)")

	// info runs the binary in plan mode here and prints its JobGraph.
	r = mustStrom(t, nil, append([]string{"info", bins.seqjob}, long.args...)...)
	var plan struct {
		Vertices []json.RawMessage `json:"vertices"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &plan), r.String())
	require.NotEmpty(t, plan.Vertices, r.String())
	for _, uid := range []string{`"check"`, `"count"`} {
		require.Contains(t, r.stdout, uid, "the plan names the operator")
	}

	// A checkpoint by hand (Flink 1.17's trigger): the CLI waits for it
	// and names it; the job's checkpoint history has it.
	r = mustStrom(t, envJM, "checkpoint", job)
	var ckID int64
	_, err := fmt.Sscanf(r.stdout[strings.Index(r.stdout, "Checkpoint "):], "Checkpoint %d for job", &ckID)
	require.NoError(t, err, r.String())
	require.Positive(t, ckID)
	var hist struct {
		History []struct {
			ID     int64  `json:"id"`
			Status string `json:"status"`
		} `json:"history"`
	}
	require.NoError(t, c.get("/jobs/"+job+"/checkpoints", &hist))
	found := false
	for _, h := range hist.History {
		found = found || (h.ID == ckID && h.Status == "COMPLETED")
	}
	require.True(t, found, "checkpoint %d is not a completed one of the job's history: %+v", ckID, hist.History)

	// A savepoint of the running job, then its disposal.
	spDir := t.TempDir()
	r = mustStrom(t, envJM, "savepoint", job, spDir)
	sp := savepointOf(t, r)
	require.True(t, strings.HasPrefix(sp, spDir) || strings.HasPrefix(sp, "file://"+spDir), "savepoint %s not below %s", sp, spDir)
	spPath := strings.TrimPrefix(sp, "file://")
	require.FileExists(t, filepath.Join(spPath, "_metadata"))
	r = mustStrom(t, envJM, "savepoint", "--dispose", sp)
	require.Contains(t, r.stdout, "disposed")
	require.NoDirExists(t, spPath)
	// The job kept running through all that.
	waitListed(t, c, job, "RUNNING")

	r = mustStrom(t, envJM, "cancel", job)
	require.Contains(t, r.stdout, "Cancelled job "+job)
	listing = waitListed(t, c, job, "CANCELED")
	require.Contains(t, listing, "Terminated Jobs")
	require.Contains(t, mustStrom(t, envJM, "list").stdout, "No running jobs.")

	// Attached run: waits for the job's end and exits 0.
	short := newSeqJob(t, 600, 6, 2, "--rate", "0")
	r = mustStrom(t, envJM, append([]string{"run", bins.seqjob}, short.args...)...)
	short.checkExact(t)
	require.Contains(t, r.stdout, "Job with JobID "+jobIDOf(t, r)+" has finished.")

	// Errors.
	const unknown = "00000000000000000000000000000000"
	for _, args := range [][]string{{"cancel", unknown}, {"stop", unknown}, {"savepoint", unknown, spDir}} {
		r = strom(t, envJM, args...)
		require.Error(t, r.err, "strom %v\n%s", args, r)
		require.Contains(t, r.stderr, "no such job", "strom %v\n%s", args, r)
	}
	missing := filepath.Join(t.TempDir(), "no-savepoint")
	// A savepoint that is not there is refused at submission, so that
	// even a detached run hears of it, and no job is made.
	r = strom(t, envJM, append([]string{"run", "-d", "-s", missing, bins.seqjob}, short.args...)...)
	require.Error(t, r.err, r.String())
	require.Contains(t, r.stderr, missing, r.String())
	require.NotContains(t, r.stdout, "Job has been submitted", r.String())
	before := mustStrom(t, envJM, "list", "-a").stdout
	require.Equal(t, 2, strings.Count(before, " : seqjob ("), "jobs listed after the refused run:\n%s", before)

	// Nothing listens on this address any more.
	r = strom(t, nil, "list", "--jobmanager", deadAddress(t))
	require.Error(t, r.err, r.String())
	require.Contains(t, r.stderr, "cannot reach the JobManager", r.String())
}

// deadAddress is a loopback REST URL nothing listens on: a port the
// kernel handed out and that was closed again.
func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "http://" + addr
}

// A job stopped with a savepoint through `strom stop` and resumed with
// `strom run -s` at another parallelism (2, then 3 or 1) loses and duplicates
// nothing: the committed output of both runs together holds every (key,
// seq) once. The generator's two splits (stride 2) are restored as they
// were and dealt to the new readers (at 3, one of them idle; at 1, one
// reader takes both), so each key (6 keys, a multiple of 2) is still read
// by one split, in order, and its restored count goes on: count == seq
// across the two runs.
func TestCLIStopWithSavepointResumeWithOtherParallelism(t *testing.T) {
	for _, tc := range []struct {
		drain bool
		p     int
	}{{false, 3}, {true, 3}, {false, 1}} {
		drain := tc.drain
		t.Run(fmt.Sprintf("drain=%v,p=2to%d", drain, tc.p), func(t *testing.T) {
			c := startCluster(t, 2, 2)
			envJM := []string{"STROM_JOBMANAGER=" + c.rest}
			job := newSeqJob(t, 12000, 6, 2, "--rate", "2000", "--interval", "150ms")

			r := mustStrom(t, envJM, append([]string{"run", "-d", bins.seqjob}, job.args...)...)
			first := jobIDOf(t, r)
			waitListed(t, c, first, "RUNNING")
			waitCompletedCheckpoints(t, c, first, 2)

			spDir := t.TempDir()
			stop := []string{"stop", "--savepoint-path", spDir}
			if drain {
				stop = append(stop, "--drain")
			}
			r = mustStrom(t, envJM, append(stop, first)...)
			sp := savepointOf(t, r)
			require.FileExists(t, filepath.Join(strings.TrimPrefix(sp, "file://"), "_metadata"))
			waitListed(t, c, first, "FINISHED")
			before := len(job.committed(t))
			// Stopped, the job commits nothing more.
			time.Sleep(300 * time.Millisecond)
			require.Len(t, job.committed(t), before, "output committed after the stop")
			require.Greater(t, before, 0, "the first run committed nothing before it stopped")
			require.Less(t, before, int(job.n), "the first run ended its input before the stop: nothing left to resume")

			resumed := withFlag(job.args, "--p", fmt.Sprint(tc.p))
			run := []string{"run", "-s", sp}
			// The drained run committed its end-of-input files; the
			// resumed one, restored, names its own apart (with its job id).
			r = mustStrom(t, envJM, append(append(run, bins.seqjob), resumed...)...)
			second := jobIDOf(t, r)
			require.Contains(t, r.stdout, "Job with JobID "+second+" has finished.", r.String())
			require.Equal(t, []int{tc.p}, parallelismsOf(t, c, second), "the resumed job's parallelism")
			var ck struct {
				Latest struct {
					Restored *struct {
						Savepoint bool   `json:"is_savepoint"`
						Path      string `json:"external_path"`
					} `json:"restored"`
				} `json:"latest"`
			}
			require.NoError(t, c.get("/jobs/"+second+"/checkpoints", &ck))
			require.NotNil(t, ck.Latest.Restored, "the resumed job reports no restore")
			require.True(t, ck.Latest.Restored.Savepoint)
			checkExactUnion(t, job.n, job.keys, job.committed(t))
		})
	}
}

// withFlag is args with the value after flag replaced by value.
func withFlag(args []string, flag, value string) []string {
	out := slices.Clone(args)
	for i := range len(out) - 1 {
		if out[i] == flag {
			out[i+1] = value
		}
	}
	return out
}

// parallelismsOf is the distinct parallelisms of job's vertices, sorted.
func parallelismsOf(t *testing.T, c *cluster, job string) []int {
	t.Helper()
	var details struct {
		Vertices []struct {
			Parallelism int `json:"parallelism"`
		} `json:"vertices"`
	}
	require.NoError(t, c.get("/jobs/"+job, &details))
	require.NotEmpty(t, details.Vertices)
	var ps []int
	for _, v := range details.Vertices {
		if !slices.Contains(ps, v.Parallelism) {
			ps = append(ps, v.Parallelism)
		}
	}
	slices.Sort(ps)
	return ps
}

// checkExactUnion is checkExact over the records of runs that together
// make one job: every key's seq 1..n/keys exactly once, with count == seq.
func checkExactUnion(t *testing.T, n, keys int64, recs []outRecord) {
	t.Helper()
	require.Len(t, recs, int(n), "records committed")
	seen := map[[2]int64]bool{}
	for _, r := range recs {
		k := [2]int64{r.Key, r.Seq}
		require.False(t, seen[k], "key %d seq %d committed twice", r.Key, r.Seq)
		seen[k] = true
		require.True(t, r.Seq >= 1 && r.Seq <= n/keys && r.Key >= 0 && r.Key < keys, "record out of range: %+v", r)
		require.Equal(t, r.Seq, r.Count, "key %d: the count at seq %d is %d: state lost or doubled", r.Key, r.Seq, r.Count)
	}
}
