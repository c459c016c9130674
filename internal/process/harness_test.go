package process_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// The tests of this package run the cluster as real processes on
// loopback: the strom binary as `strom jobmanager` and `strom
// taskmanager`, and internal/process/testdata/seqjob as the job binary
// (submitting itself with --cluster), all built once by TestMain.

var bins struct{ strom, seqjob string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strom-process-test-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.strom, bins.seqjob = filepath.Join(dir, "strom"), filepath.Join(dir, "seqjob")
	for path, pkg := range map[string]string{bins.strom: "../../cmd/strom", bins.seqjob: "./testdata/seqjob"} {
		if out, err := exec.Command("go", "build", "-o", path, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			_ = os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	if code == 0 {
		if left := leftovers(dir); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "processes left running after the tests:\n%s\n", strings.Join(left, "\n"))
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// proc is a child process of a test, with its stderr in a file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) stderr() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// start runs bin with args; with ready set, it waits for the stdout line
// starting with it and returns the line.
func start(t testing.TB, dir, name, ready, bin string, args ...string) (*proc, string) {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	require.NoError(t, err)
	p.cmd.Stderr = logf
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start(), name)
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.alive() {
			p.signal(syscall.SIGCONT)
			p.kill()
		}
	})
	if ready == "" {
		return p, ""
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				<-p.done
				t.Fatalf("%s exited before it was ready: %v\n%s", name, p.err, p.stderr())
			}
			if strings.HasPrefix(l, ready) {
				return p, l
			}
		case <-timeout:
			t.Fatalf("%s not ready after 30s\n%s", name, p.stderr())
		}
	}
}

// cluster is a JobManager and TaskManagers, each a process.
type cluster struct {
	t        testing.TB
	dir      string
	jm       *proc
	rpc      string
	rest     string
	slots    int
	mu       sync.Mutex
	tms      map[string]*proc
	nextTM   int
	tmPrefix string
	tmArgs   []string // more arguments of every `strom taskmanager`
}

// startCluster starts a JobManager (with jmArgs) and n TaskManagers of
// slots slots, and waits until every slot is registered.
func startCluster(t testing.TB, n, slots int, jmArgs ...string) *cluster {
	t.Helper()
	return startClusterTMArgs(t, n, slots, nil, jmArgs...)
}

// startClusterTMArgs is startCluster with more arguments for the
// TaskManagers.
func startClusterTMArgs(t testing.TB, n, slots int, tmArgs []string, jmArgs ...string) *cluster {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"jobmanager", "--rpc-address", "127.0.0.1:0", "--rest-address", "127.0.0.1:0", "--dir", filepath.Join(dir, "jm")}, jmArgs...)
	jm, line := start(t, dir, "jobmanager", "jobmanager ready:", bins.strom, args...)
	c := &cluster{t: t, dir: dir, jm: jm, slots: slots, tms: map[string]*proc{}, tmArgs: tmArgs}
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "rpc="); ok {
			c.rpc = v
		}
		if v, ok := strings.CutPrefix(f, "rest="); ok {
			c.rest = v
		}
	}
	require.NotEmpty(t, c.rpc, line)
	require.NotEmpty(t, c.rest, line)
	for range n {
		c.startTM()
	}
	c.waitTaskManagers(n)
	return c
}

// startTM starts one more TaskManager and returns its id.
func (c *cluster) startTM() string {
	c.t.Helper()
	c.mu.Lock()
	c.nextTM++
	id := fmt.Sprintf("tm-%d", c.nextTM)
	c.mu.Unlock()
	args := append([]string{"taskmanager", "--jobmanager", c.rpc,
		"--slots", fmt.Sprint(c.slots), "--id", id, "--dir", filepath.Join(c.dir, id)}, c.tmArgs...)
	p, _ := start(c.t, c.dir, id, "taskmanager ready:", bins.strom, args...)
	c.mu.Lock()
	c.tms[id] = p
	c.mu.Unlock()
	return id
}

func (c *cluster) tm(id string) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tms[id]
}

// liveTMs are the ids of TaskManager processes still running, sorted.
func (c *cluster) liveTMs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for id, p := range c.tms {
		if p.alive() {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// get decodes the REST answer at path into v.
func (c *cluster) get(path string, v any) error {
	resp, err := http.Get(c.rest + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// waitTaskManagers waits until the JobManager lists n TaskManagers.
func (c *cluster) waitTaskManagers(n int) {
	c.t.Helper()
	var got struct {
		TaskManagers []struct {
			ID string `json:"id"`
		} `json:"taskmanagers"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := c.get("/taskmanagers", &got)
		if err == nil && len(got.TaskManagers) == n {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d TaskManagers registered after 20s, want %d (%v)\n%s", len(got.TaskManagers), n, err, c.jm.stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// seqJob is a run of the seqjob binary.
type seqJob struct {
	out, ck string
	n, keys int64
	p       int
	args    []string
}

func newSeqJob(t testing.TB, n, keys int64, p int, args ...string) *seqJob {
	dir := t.TempDir()
	j := &seqJob{out: filepath.Join(dir, "out"), ck: filepath.Join(dir, "ck"), n: n, keys: keys, p: p}
	j.args = append([]string{"--n", fmt.Sprint(n), "--keys", fmt.Sprint(keys), "--p", fmt.Sprint(p), "--out", j.out, "--checkpoints", j.ck}, args...)
	return j
}

// run runs the job to its end on the cluster at rest ("": embedded) and
// returns its output.
func (j *seqJob) run(ctx context.Context, rest string) (string, error) {
	args := j.args
	if rest != "" {
		args = append([]string{"--cluster", rest}, args...)
	}
	cmd := exec.CommandContext(ctx, bins.seqjob, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// outRecord is a line of seqjob's output.
type outRecord struct {
	Key   int64 `json:"key"`
	Seq   int64 `json:"seq"`
	Count int64 `json:"count"`
}

// committed reads the sink's committed part files (in-progress ones
// start with "." or end in ".inprogress").
func (j *seqJob) committed(t testing.TB) []outRecord {
	t.Helper()
	ents, err := os.ReadDir(j.out)
	require.NoError(t, err)
	var out []outRecord
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), ".inprogress") {
			continue
		}
		f, err := os.Open(filepath.Join(j.out, e.Name()))
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r outRecord
			require.NoError(t, json.Unmarshal(sc.Bytes(), &r), "%s: %q", e.Name(), sc.Text())
			out = append(out, r)
		}
		require.NoError(t, f.Close())
	}
	return out
}

// checkExact checks exactly-once output: every key's seq 1..n/keys
// exactly once, and (each key being read by one source subtask, in
// order) its count equal to its seq: state neither lost nor doubled.
func (j *seqJob) checkExact(t testing.TB) {
	t.Helper()
	recs := j.committed(t)
	require.Len(t, recs, int(j.n), "records committed")
	perKey := j.n / j.keys
	seen := map[[2]int64]bool{}
	for _, r := range recs {
		k := [2]int64{r.Key, r.Seq}
		require.False(t, seen[k], "key %d seq %d committed twice", r.Key, r.Seq)
		seen[k] = true
		require.True(t, r.Seq >= 1 && r.Seq <= perKey && r.Key >= 0 && r.Key < j.keys, "record out of range: %+v", r)
		require.Equal(t, r.Seq, r.Count, "key %d: the count at seq %d is %d: state lost or doubled", r.Key, r.Seq, r.Count)
	}
}

// leftovers lists the processes the tests started that still run, a few
// seconds after the last test: any process run from the binaries built
// here or from a temporary directory (job workers run from a
// TaskManager's cache of fetched binaries), and any child of this one.
func leftovers(binDir string) []string {
	tmp := os.TempDir()
	self := fmt.Sprint(os.Getpid())
	var left []string
	for range 50 {
		left = left[:0]
		procs, _ := filepath.Glob("/proc/[0-9]*")
		for _, p := range procs {
			cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
			if err != nil || len(cmdline) == 0 {
				continue
			}
			argv0 := strings.SplitN(string(cmdline), "\x00", 2)[0]
			stat, _ := os.ReadFile(filepath.Join(p, "stat"))
			// pid (comm) state ppid ...
			fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
			child := len(fields) > 1 && fields[1] == self
			if strings.HasPrefix(argv0, binDir) || (strings.HasPrefix(argv0, tmp) && strings.Contains(argv0, "/binaries/")) || child {
				left = append(left, filepath.Base(p)+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
			}
		}
		if len(left) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return left
}
