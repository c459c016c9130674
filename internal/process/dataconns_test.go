package process_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Two jobs at once over three TaskManagers (the default, multiplexed
// data plane): each pair of TaskManagers that exchanges data has exactly
// one TCP connection, whatever the number of jobs, and the job workers
// hold none: every stream goes through their TaskManager's session.
func TestTwoJobsShareOneDataConnectionPerTaskManagerPair(t *testing.T) {
	c := startCluster(t, 3, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	jobs := []*seqJob{
		newSeqJob(t, 36000, 6, 3, "--rate", "5000"),
		newSeqJob(t, 36000, 6, 3, "--rate", "5000"),
	}
	done := make(chan runResult, len(jobs))
	for _, j := range jobs {
		go func() { done <- <-j.runAsync(ctx, c.rest) }()
	}
	tms := c.liveTMs()
	// Sample the connections while both jobs run, until every pair that
	// should talk has its connection (sessions are dialled lazily, and a
	// dial race may show two for a moment).
	var last dataConns
	var want map[string]bool
	for settled := false; !settled; {
		select {
		case r := <-done:
			t.Fatalf("a job finished (%v) before the connections settled at one per pair: %v, want one for each of %v\n%s", r.err, last.pairs, want, r.out)
		case <-time.After(200 * time.Millisecond):
		}
		last = countDataConns(t, c, tms)
		require.Empty(t, last.workers, "job workers own TCP data connections")
		want = pairsOfJobs(t, c, tms)
		settled = len(want) >= 2 && len(last.pairs) == len(want)
		for p, n := range last.pairs {
			settled = settled && n == 1 && want[p]
		}
	}
	t.Logf("data connections: %v (pairs running a job's workers: %v)", last.pairs, want)
	for range jobs {
		r := <-done
		require.NoError(t, r.err, r.out)
		require.Contains(t, r.out, "finished")
	}
	for _, j := range jobs {
		j.checkExact(t)
	}
	for _, id := range tms {
		require.Contains(t, c.tm(id).stderr(), "datamux: session up", id)
	}
}

// --direct-data-connections keeps the old data plane: the job workers
// dial each other's TaskManager and get the sockets themselves.
func TestDirectDataConnectionsStillWork(t *testing.T) {
	c := startClusterTMArgs(t, 2, 2, []string{"--direct-data-connections"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	job := newSeqJob(t, 24000, 4, 4, "--rate", "6000")
	done := job.runAsync(ctx, c.rest)
	tms := c.liveTMs()
	var last dataConns
	var r *runResult
	for r == nil && len(last.workers) == 0 {
		select {
		case res := <-done:
			r = &res
		case <-time.After(200 * time.Millisecond):
			last = countDataConns(t, c, tms)
		}
	}
	require.NotEmpty(t, last.workers, "no job worker held a data connection of its own in direct mode")
	require.Empty(t, last.pairs, "TaskManagers hold data connections in direct mode: %v", last.pairs)
	if r == nil {
		res := <-done
		r = &res
	}
	require.NoError(t, r.err, r.out)
	require.Contains(t, r.out, "finished")
	job.checkExact(t)
	for _, id := range tms {
		require.NotContains(t, c.tm(id).stderr(), "datamux: session up", id)
	}
}

type runResult struct {
	out string
	err error
}

// runAsync runs the job in the background (see run).
func (j *seqJob) runAsync(ctx context.Context, rest string) <-chan runResult {
	ch := make(chan runResult, 1)
	go func() {
		out, err := j.run(ctx, rest)
		ch <- runResult{out, err}
	}()
	return ch
}

// dataConns is a snapshot of the established TCP connections to the
// TaskManagers' data ports.
type dataConns struct {
	pairs   map[string]int // "tm-1/tm-2": connections the TaskManager processes own
	workers []string       // connections that job worker processes own
}

var dataAddrRE = regexp.MustCompile(`taskmanager started.* data=127\.0\.0\.1:(\d+) `)

// countDataConns reads the TaskManagers' data ports from their logs and
// their processes' sockets from /proc: a connection counts for the pair
// of the TaskManager that dialled it (the remote end is a data port) and
// the one whose data port it is.
func countDataConns(t *testing.T, c *cluster, tms []string) dataConns {
	t.Helper()
	portOf := map[int]string{}
	for _, id := range tms {
		m := dataAddrRE.FindStringSubmatch(c.tm(id).stderr())
		require.NotNil(t, m, "no data address in %s's log", id)
		port, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		portOf[port] = id
	}
	type entry struct{ local, remote int }
	established := map[string]entry{} // by socket inode
	f, err := os.Open("/proc/net/tcp")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[3] != "01" { // 01: ESTABLISHED
			continue
		}
		established[fs[9]] = entry{hexPort(fs[1]), hexPort(fs[2])}
	}
	out := dataConns{pairs: map[string]int{}}
	for _, id := range tms {
		pid := c.tm(id).cmd.Process.Pid
		for _, ino := range socketInodes(pid) {
			if e, ok := established[ino]; ok {
				if peer, ok := portOf[e.remote]; ok {
					p := []string{id, peer}
					sort.Strings(p)
					out.pairs[p[0]+"/"+p[1]]++
				}
			}
		}
		for _, child := range childrenOf(pid) {
			for _, ino := range socketInodes(child) {
				if e, ok := established[ino]; ok && (portOf[e.remote] != "" || portOf[e.local] != "") {
					out.workers = append(out.workers, fmt.Sprintf("worker %d of %s: %d->%d", child, id, e.local, e.remote))
				}
			}
		}
	}
	return out
}

// pairsOfJobs is the set of TaskManager pairs that run workers of one
// job: the pairs whose tasks exchange data.
func pairsOfJobs(t *testing.T, c *cluster, tms []string) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`job worker started"[^\n]*? job_id=(\S+)`)
	on := map[string][]string{}
	for _, id := range tms {
		for _, m := range re.FindAllStringSubmatch(c.tm(id).stderr(), -1) {
			on[m[1]] = append(on[m[1]], id)
		}
	}
	want := map[string]bool{}
	for _, ids := range on {
		sort.Strings(ids)
		for i := range ids {
			for _, b := range ids[i+1:] {
				if ids[i] != b {
					want[ids[i]+"/"+b] = true
				}
			}
		}
	}
	return want
}

func hexPort(addr string) int {
	_, p, _ := strings.Cut(addr, ":")
	n, _ := strconv.ParseInt(p, 16, 32)
	return int(n)
}

// socketInodes are the inodes of the sockets pid has open.
func socketInodes(pid int) []string {
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	var out []string
	for _, fd := range fds {
		l, err := os.Readlink(fd)
		if ino, ok := strings.CutPrefix(l, "socket:["); ok && err == nil {
			out = append(out, strings.TrimSuffix(ino, "]"))
		}
	}
	return out
}

// childrenOf are the pids whose parent is pid (a TaskManager's workers).
func childrenOf(pid int) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		fs := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fs) > 1 && fs[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			out = append(out, n)
		}
	}
	return out
}
