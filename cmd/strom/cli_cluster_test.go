package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// buildStrom builds this command into a temporary directory: the cluster
// tests run it as real processes, since the TaskManagers it starts are
// this executable again.
func buildStrom(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "strom")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// startProcess starts bin with args in its own process group and returns
// it with a reader of its stdout; t.Cleanup kills its group and those of
// its children (the TaskManagers have groups of their own), so nothing is
// left running even when the test fails.
func startProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &prefixWriter{t: t, prefix: filepath.Base(bin) + ": "}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		for _, c := range childPIDs(pid) {
			_ = syscall.Kill(-c, syscall.SIGKILL)
			_ = syscall.Kill(c, syscall.SIGKILL)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd, bufio.NewReader(stdout)
}

// prefixWriter logs a child's stderr through t (only shown on failure or
// with -v), until the test ends.
type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a line after the test ended
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(p), nil
}

// readLine waits (bounded) for a line of r matching re and returns its
// submatches; other lines are skipped.
func readLine(t *testing.T, r *bufio.Reader, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	found := make(chan []string, 1)
	go func() {
		for {
			l, err := r.ReadString('\n')
			if m := re.FindStringSubmatch(l); m != nil {
				found <- m
				// Keep draining so the child never blocks on a full pipe.
				_, _ = io.Copy(io.Discard, r)
				return
			}
			if err != nil {
				close(found)
				return
			}
		}
	}()
	select {
	case m, ok := <-found:
		require.True(t, ok, "the process ended without printing a line matching %s", re)
		return m
	case <-time.After(timeout):
		t.Fatalf("no line matching %s within %v", re, timeout)
		return nil
	}
}

// childPIDs lists the processes whose parent is pid (from /proc).
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c))
		if err != nil {
			continue
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		// fields[0] is the state, fields[1] the parent's pid.
		if len(fields) > 1 && fields[0] != "Z" && fields[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// taskManagerPaths is the RPC address of every TaskManager the REST API
// lists: a restarted TaskManager keeps its id but listens on a new port.
func taskManagerPaths(t *testing.T, rest string) []string {
	t.Helper()
	resp, err := http.Get(rest + "/taskmanagers")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body struct {
		TaskManagers []struct {
			ID   string `json:"id"`
			Path string `json:"path"`
		} `json:"taskmanagers"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	var paths []string
	for _, tm := range body.TaskManagers {
		paths = append(paths, tm.Path)
	}
	slices.Sort(paths)
	return paths
}

var clusterReady = regexp.MustCompile(`^cluster ready: rest=(\S+) rpc=(\S+)`)

// A cluster started with `strom cluster start`: both TaskManagers
// register, one killed is started again and registers again, a second
// start on the same directory refuses, and `strom cluster stop` ends every
// process and removes cluster.json.
func TestClusterStartStop(t *testing.T) {
	bin := buildStrom(t)
	dir := t.TempDir()
	cluster, stdout := startProcess(t, bin, "cluster", "start", "--taskmanagers", "2", "--slots", "2",
		"--rest-address", "127.0.0.1:0", "--rpc-address", "127.0.0.1:0", "--dir", dir, "--log-level", "warn")
	m := readLine(t, stdout, clusterReady, 20*time.Second)
	rest := m[1]

	var before []string
	require.Eventually(t, func() bool {
		before = taskManagerPaths(t, rest)
		return len(before) == 2
	}, 15*time.Second, 50*time.Millisecond, "two TaskManagers register")
	info, err := readClusterInfo(filepath.Join(dir, clusterFile))
	require.NoError(t, err)
	require.Equal(t, clusterInfo{PID: cluster.Process.Pid, REST: rest, RPC: m[2]}, info)

	out, err := exec.Command(bin, "cluster", "start", "--taskmanagers", "1", "--dir", dir,
		"--rest-address", "127.0.0.1:0", "--rpc-address", "127.0.0.1:0").CombinedOutput()
	require.Error(t, err, "a second cluster on the same directory: %s", out)
	require.Contains(t, string(out), "a cluster already runs with directory "+dir)

	tms := childPIDs(cluster.Process.Pid)
	require.Len(t, tms, 2, "two TaskManager processes")
	require.NoError(t, syscall.Kill(tms[0], syscall.SIGKILL))
	require.Eventually(t, func() bool {
		now := childPIDs(cluster.Process.Pid)
		return len(now) == 2 && !slices.Contains(now, tms[0])
	}, 10*time.Second, 50*time.Millisecond, "the killed TaskManager is started again")
	require.Eventually(t, func() bool {
		now := taskManagerPaths(t, rest)
		kept := 0
		for _, p := range now {
			if slices.Contains(before, p) {
				kept++
			}
		}
		// The survivor is still there; the killed one is replaced by its
		// new process (same id, new port).
		return len(now) == 2 && kept == 1
	}, 10*time.Second, 50*time.Millisecond, "the restarted TaskManager registers again")
	// Its log holds both starts, appended.
	logs, err := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	require.NoError(t, err)
	require.Len(t, logs, 2)
	restarted := 0
	for _, l := range logs {
		data, err := os.ReadFile(l)
		require.NoError(t, err)
		if strings.Contains(string(data), " start 2 of worker ") {
			restarted++
			require.Equal(t, 2, strings.Count(string(data), "taskmanager ready: id="), string(data))
		}
	}
	require.Equal(t, 1, restarted, "exactly one TaskManager was restarted")

	// The cluster runs a job: a job binary submits itself to it and
	// finishes, its output counted (exactness is the process tests').
	// At parallelism 6 it needs 6 slots of the cluster's 4: the
	// ResourceManager has the provider start one more TaskManager.
	job := filepath.Join(t.TempDir(), "seqjob")
	out, err = exec.Command("go", "build", "-o", job, "../../internal/process/testdata/seqjob").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	outDir := t.TempDir()
	run := exec.Command(job, "--cluster", rest, "--out", outDir, "--checkpoints", t.TempDir(), "--n", "2000", "--rate", "4000", "--p", "6")
	run.WaitDelay = time.Second
	done := make(chan error, 1)
	go func() { out, err := run.CombinedOutput(); done <- fmt.Errorf("%w: %s", err, out) }()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "seqjob: job ", "the job finished")
		require.NotContains(t, err.Error(), "exit status")
	case <-time.After(45 * time.Second):
		_ = run.Process.Kill()
		t.Fatal("the job did not finish within 45 s")
	}
	lines := 0
	parts, err := filepath.Glob(filepath.Join(outDir, "[^.]*"))
	require.NoError(t, err)
	for _, p := range parts {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		lines += strings.Count(string(data), "\n")
	}
	require.Equal(t, 2000, lines, "records committed: %q", parts)
	require.Len(t, taskManagerPaths(t, rest), 3, "the ResourceManager asked the provider for a third TaskManager")

	all := append([]int{cluster.Process.Pid}, childPIDs(cluster.Process.Pid)...)
	out, err = exec.Command(bin, "cluster", "stop", "--dir", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, fmt.Sprintf("Stopping cluster (pid %d, rest %s).\nCluster stopped.\n", info.PID, rest), string(out))
	require.NoError(t, cluster.Wait(), "the cluster exits with status 0 on SIGTERM")
	for _, p := range all {
		require.Error(t, syscall.Kill(p, 0), "process %d is gone", p)
	}
	_, err = os.Stat(filepath.Join(dir, clusterFile))
	require.ErrorIs(t, err, os.ErrNotExist, "cluster.json is removed")

	out, err = exec.Command(bin, "cluster", "stop", "--dir", dir).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "no cluster runs with directory "+dir)
}

// stop with a cluster.json left by a cluster that was killed: an error,
// and the stale file is removed.
func TestClusterStopStale(t *testing.T) {
	dir := t.TempDir()
	// A pid that is surely gone: a child that has exited and been reaped.
	c := exec.Command("true")
	require.NoError(t, c.Run())
	require.NoError(t, writeClusterInfo(filepath.Join(dir, clusterFile), clusterInfo{PID: c.Process.Pid, REST: "http://127.0.0.1:1"}))
	_, err := runCLI("cluster", "stop", "--dir", dir)
	require.ErrorContains(t, err, fmt.Sprintf("process %d is gone", c.Process.Pid))
	_, err = os.Stat(filepath.Join(dir, clusterFile))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = runCLI("cluster", "stop", "--dir", dir)
	require.ErrorContains(t, err, "no cluster runs with directory")
}

// Of two starts racing on one directory only one creates cluster.json.
func TestClusterInfoIsCreatedExclusively(t *testing.T) {
	p := filepath.Join(t.TempDir(), clusterFile)
	require.NoError(t, writeClusterInfo(p, clusterInfo{PID: 1, REST: "http://a"}))
	require.ErrorIs(t, writeClusterInfo(p, clusterInfo{PID: 2, REST: "http://b"}), os.ErrExist)
	info, err := readClusterInfo(p)
	require.NoError(t, err)
	require.Equal(t, clusterInfo{PID: 1, REST: "http://a"}, info, "the first one's")
	leftovers, err := filepath.Glob(p + ".*")
	require.NoError(t, err)
	require.Empty(t, leftovers, "no temporary file left")
}
