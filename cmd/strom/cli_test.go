package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/restclient"
	"github.com/strom-dev/strom/internal/restclient/restclienttest"
)

// list, cancel, stop, savepoint (trigger and dispose) and checkpoint
// against a cluster that answers as the REST API does: what they print
// (Flink's wording) and what they asked for.
func TestCLIJobCommands(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	fake := restclienttest.New()
	defer fake.Close() // before goleak's check
	m := []string{"-m", fake.URL}
	out, err := runCLI(append([]string{"list"}, m...)...)
	require.NoError(t, err)
	require.Equal(t, "Waiting for response...\nNo running jobs.\nNo scheduled jobs.\n", out)

	a, b := fake.AddJob("first"), fake.AddJob("second")
	done := fake.AddJob("old")
	done.State = "FINISHED"
	sched := fake.AddJob("waiting")
	sched.State = "CREATED"
	b.Start = a.Start.Add(time.Minute)

	out, err = runCLI(append([]string{"list"}, m...)...)
	require.NoError(t, err)
	at := func(j *restclienttest.Job) string { return j.Start.Format("02.01.2006 15:04:05") }
	require.Equal(t, "Waiting for response...\n"+
		"------------------ Running/Restarting Jobs -------------------\n"+
		at(a)+" : "+a.ID+" : first (RUNNING)\n"+
		at(b)+" : "+b.ID+" : second (RUNNING)\n"+
		"--------------------------------------------------------------\n"+
		"----------------------- Scheduled Jobs -----------------------\n"+
		at(sched)+" : "+sched.ID+" : waiting (CREATED)\n"+
		"--------------------------------------------------------------\n", out)
	out, err = runCLI(append([]string{"list", "-a"}, m...)...)
	require.NoError(t, err)
	require.Contains(t, out, "---------------------- Terminated Jobs -----------------------\n"+at(done)+" : "+done.ID+" : old (FINISHED)\n")

	out, err = runCLI(append([]string{"savepoint", a.ID, "file:///sps"}, m...)...)
	require.NoError(t, err)
	sp := "file:///sps/savepoint-" + a.ID[:6] + "-1"
	require.Equal(t, "Triggering savepoint for job "+a.ID+".\nWaiting for response...\nSavepoint completed. Path: "+sp+
		"\nYou can resume your program from this savepoint with the run command.\n", out)

	out, err = runCLI(append([]string{"savepoint", "--dispose", sp}, m...)...)
	require.NoError(t, err)
	require.Equal(t, "Disposing savepoint '"+sp+"'.\nWaiting for response...\nSavepoint '"+sp+"' disposed.\n", out)
	require.Equal(t, []string{sp}, fake.Disposed)
	_, err = runCLI(append([]string{"savepoint", "--dispose", sp}, m...)...)
	require.ErrorContains(t, err, "no _metadata", "a savepoint that does not exist (any more) is an error")

	out, err = runCLI(append([]string{"stop", "--savepoint-path", "file:///stop", "--drain", a.ID}, m...)...)
	require.NoError(t, err)
	require.Equal(t, "Suspending job \""+a.ID+"\" with a savepoint.\nSavepoint completed. Path: file:///stop/savepoint-"+a.ID[:6]+"-2\n", out)
	require.Equal(t, "FINISHED", a.State)

	out, err = runCLI(append([]string{"cancel", b.ID}, m...)...)
	require.NoError(t, err)
	require.Equal(t, "Cancelling job "+b.ID+".\nCancelled job "+b.ID+".\n", out)
	require.Equal(t, "CANCELED", b.State)
	_, err = runCLI(append([]string{"cancel", b.ID}, m...)...)
	require.ErrorContains(t, err, "has already ended (CANCELED)", "the server's text is surfaced")

	_, err = runCLI(append([]string{"checkpoint", a.ID}, m...)...)
	require.ErrorIs(t, err, restclient.ErrNotSupported)
	require.ErrorContains(t, err, "not supported by this cluster")
}

// Every job command names an unknown job id as such; an unreachable
// cluster is said so, with its address, from the flag or the environment.
func TestCLIErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	fake := restclienttest.New()
	defer fake.Close() // before goleak's check
	const id = "ffffffffffffffffffffffffffffffff"
	for _, args := range [][]string{{"cancel", id}, {"stop", id}, {"savepoint", id, "/sp"}, {"checkpoint", id}} {
		_, err := runCLI(append(args, "-m", fake.URL)...)
		require.ErrorIs(t, err, restclient.ErrUnknownJob, args[0])
		require.ErrorContains(t, err, "unknown job id "+id, args[0])
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	for _, args := range [][]string{{"list"}, {"cancel", id}, {"stop", id}, {"savepoint", id}, {"savepoint", "--dispose", "/sp"}, {"checkpoint", id}, {"run", os.Args[0]}} {
		// The flag before the arguments: run takes everything after BINARY as the program's.
		_, err := runCLI(append([]string{args[0], "--jobmanager", dead}, args[1:]...)...)
		require.ErrorContains(t, err, "cannot reach the JobManager at "+dead+": ", args[0])
	}
	t.Setenv(restclient.EnvJobManager, dead)
	_, err = runCLI("list")
	require.ErrorContains(t, err, "cannot reach the JobManager at "+dead+": ", "$STROM_JOBMANAGER")

	_, err = runCLI("run", "-m", fake.URL, filepath.Join(t.TempDir(), "nobinary"))
	require.ErrorContains(t, err, "uploading job binary: ")
	require.ErrorContains(t, err, "no such file")

	// inspect stays a subcommand of savepoint, not a job id.
	_, err = runCLI("savepoint", "inspect", filepath.Join(t.TempDir(), "none"))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "JobManager")
	_, err = runCLI("savepoint", "--dispose", "/sp", id)
	require.ErrorContains(t, err, "--dispose PATH takes no job id")
}

// buildJob builds testdata/clijob, a job binary.
func buildJob(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "clijob")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/clijob")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func fileSHA(t *testing.T, p string) string {
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// info, run and a binary submitting itself, with a real job binary.
func TestCLIWithJobBinary(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	bin := buildJob(t)
	fake := restclienttest.New()
	defer fake.Close() // before goleak's check

	t.Run("info prints the JobGraph", func(t *testing.T) {
		out, err := runCLI("info", bin, "-p", "3")
		require.NoError(t, err)
		var jg jobgraph.JobGraph
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&jg), out)
		require.Equal(t, "clijob", jg.JobName)
		var names []string
		for _, v := range jg.Vertices {
			names = append(names, v.Name)
			if v.Name == "Double" {
				require.Equal(t, 3, v.Parallelism, "the program's own -p reached it, not strom's")
			}
		}
		require.Equal(t, []string{"Slice Source", "Double", "Discard"}, names)
		require.Equal(t, 0, len(fake.Submissions), "plan mode submits nothing")
	})
	t.Run("info of a program that is not a job", func(t *testing.T) {
		truth, err := exec.LookPath("true")
		require.NoError(t, err)
		_, err = runCLI("info", truth)
		require.ErrorContains(t, err, "printed no JobGraph in plan mode")
		_, err = runCLI("info", filepath.Join(t.TempDir(), "missing"))
		require.ErrorContains(t, err, "in plan mode")
	})
	t.Run("run attached", func(t *testing.T) {
		fake.Mu.Lock()
		fake.Savepoints["file:///sp/savepoint-x"] = true
		fake.Mu.Unlock()
		out, err := runCLI("run", "-m", fake.URL, "-p", "4", "-s", "file:///sp/savepoint-x", "--allow-non-restored-state", bin, "-n", "7", "-p", "1")
		require.NoError(t, err)
		re := regexp.MustCompile(`^Job has been submitted with JobID ([0-9a-f]{32})\nProgram execution finished\nJob with JobID ([0-9a-f]{32}) has finished\.\nJob Runtime: 1234 ms\n$`)
		mm := re.FindStringSubmatch(out)
		require.NotNil(t, mm, out)
		require.Equal(t, mm[1], mm[2])
		fake.Mu.Lock()
		defer fake.Mu.Unlock()
		j := fake.Jobs[mm[1]]
		require.Equal(t, []string{"-n", "7", "-p", "1"}, j.Args, "the program's arguments, strom's flags before BINARY")
		require.Equal(t, 4, j.Parallelism)
		require.Equal(t, "file:///sp/savepoint-x", j.SavepointPath)
		require.True(t, j.AllowNonRestoredState)
		require.Equal(t, fileSHA(t, bin), fake.Binaries[j.Name], "the binary was uploaded intact")
		require.Equal(t, "FINISHED", j.State, "attached: waited for the end")
	})
	t.Run("run detached", func(t *testing.T) {
		out, err := runCLI("run", "-d", "-m", fake.URL, bin)
		require.NoError(t, err)
		require.Regexp(t, `^Job has been submitted with JobID [0-9a-f]{32}\n$`, out)
		id := strings.TrimSpace(strings.TrimPrefix(out, "Job has been submitted with JobID "))
		fake.Mu.Lock()
		defer fake.Mu.Unlock()
		require.Equal(t, "RUNNING", fake.Jobs[id].State, "detached: did not wait")
	})
	t.Run("run from a savepoint that does not exist", func(t *testing.T) {
		_, err := runCLI("run", "-m", fake.URL, "-s", "file:///sp/none", bin)
		require.ErrorContains(t, err, "Savepoint file:///sp/none does not exist.")
	})
	t.Run("a job that fails", func(t *testing.T) {
		fake.Mu.Lock()
		fake.EndState, fake.Failure = "FAILED", `operator "Double" (subtask 2/2): boom`
		fake.Mu.Unlock()
		defer func() {
			fake.Mu.Lock()
			fake.EndState, fake.Failure = "", ""
			fake.Mu.Unlock()
		}()
		out, err := runCLI("run", "-m", fake.URL, bin)
		require.Regexp(t, `^Job has been submitted with JobID [0-9a-f]{32}\n$`, out)
		require.ErrorContains(t, err, `failed: operator "Double" (subtask 2/2): boom`)

		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "STROM_CLUSTER="+fake.URL)
		outb, err := cmd.CombinedOutput()
		require.Error(t, err, "the program's Execute returned the failure: %s", outb)
		require.Contains(t, string(outb), `job failed: job "clijob"`)
		require.Contains(t, string(outb), `operator "Double" (subtask 2/2): boom`)
	})
	t.Run("the binary submits itself", func(t *testing.T) {
		for name, how := range map[string]func(*exec.Cmd){
			"STROM_CLUSTER": func(c *exec.Cmd) { c.Env = append(os.Environ(), "STROM_CLUSTER="+fake.URL) },
			"--cluster": func(c *exec.Cmd) {
				c.Args = append(c.Args[:1], append([]string{"--cluster", fake.URL}, c.Args[1:]...)...)
			},
		} {
			fake.Mu.Lock()
			before := len(fake.Submissions)
			fake.Mu.Unlock()
			cmd := exec.Command(bin, "-n", "9")
			how(cmd)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s: %s", name, out)
			require.Regexp(t, `clijob: job [0-9a-f]{32} finished in 1.234s`, string(out), name)
			fake.Mu.Lock()
			require.Len(t, fake.Submissions, before+1, name)
			s := fake.Submissions[before]
			fake.Mu.Unlock()
			require.Equal(t, fileSHA(t, bin), s.BinarySHA256, name)
			require.Contains(t, s.Request["programArgsList"], "9", name)
			var jg jobgraph.JobGraph
			require.NoError(t, json.Unmarshal(s.JobGraph, &jg), name)
			require.Equal(t, "clijob", jg.JobName, name)
		}
	})
}
