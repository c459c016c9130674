package strom

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRoleFlags(t *testing.T) {
	fs := func() *flag.FlagSet {
		fs := flag.NewFlagSet("jobmanager", flag.ContinueOnError)
		fs.String("dir", "", "")
		return fs
	}
	require.NoError(t, parseRoleFlags(fs(), []string{"--dir", "/x"}))
	require.ErrorContains(t, parseRoleFlags(fs(), []string{"--bogus"}), "application mode: jobmanager: flag provided but not defined: -bogus")
	require.ErrorContains(t, parseRoleFlags(fs(), []string{"--dir"}), "flag needs an argument: -dir")
	require.ErrorContains(t, parseRoleFlags(fs(), []string{"stray"}), `unexpected argument "stray" (the program's arguments go after "--")`)
}

// roleProcess is a job binary run in a role, as a real process in its own
// process group, with its stdout read line by line.
type roleProcess struct {
	cmd   *exec.Cmd
	lines chan string
	exit  chan error
}

func startRole(t *testing.T, bin string, args ...string) *roleProcess {
	t.Helper()
	p := &roleProcess{cmd: exec.Command(bin, args...), lines: make(chan string, 1024), exit: make(chan error, 1)}
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	p.cmd.Stderr = os.Stderr // only seen with -v or when something breaks
	// Its own group: the cleanup below ends it and the job-worker
	// processes a TaskManager started, even when the test fails.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, p.cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody reads that many: drop, never block the child
			}
		}
		close(p.lines)
		p.exit <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exit
		p.exit <- nil // for a later read, if any
	})
	return p
}

// await returns the submatches of the first line matching re, bounded.
func (p *roleProcess) await(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			require.True(t, ok, "the process ended before printing a line matching %s", re)
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("no line matching %s within %v", re, timeout)
		}
	}
}

// wait returns the process's exit status, bounded.
func (p *roleProcess) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case err := <-p.exit:
		p.exit <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		require.NoError(t, err)
		return 0
	case <-time.After(timeout):
		t.Fatalf("the process did not exit within %v", timeout)
		return -1
	}
}

// Application mode with real processes: `seqjob jobmanager` runs the
// JobManager and submits its own job, `seqjob taskmanager` offers slots
// and runs the tasks in job workers of the same executable; the job's
// output is exactly once, the JobManager process exits 0 when the job
// finishes and the TaskManager 0 on SIGTERM.
func TestApplicationModeProcesses(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "seqjob")
	out, err := exec.Command("go", "build", "-o", bin, "./internal/process/testdata/seqjob").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	outDir, ckDir := t.TempDir(), t.TempDir()
	const n, keys = 4000, 8
	prog := []string{"--", "--out", outDir, "--checkpoints", ckDir, "--n", "4000", "--keys", "8", "--rate", "4000", "--p", "2"}

	t.Run("unknown role flag", func(t *testing.T) {
		p := startRole(t, bin, append([]string{"jobmanager", "--bogus"}, prog...)...)
		require.Equal(t, 1, p.wait(t, 20*time.Second), "seqjob exits 1 on Execute's error")
	})

	jm := startRole(t, bin, append([]string{"jobmanager", "--rpc-address", "127.0.0.1:0", "--rest-address", "127.0.0.1:0",
		"--dir", t.TempDir()}, prog...)...)
	m := jm.await(t, regexp.MustCompile(`^jobmanager ready: rpc=(\S+) rest=(http://\S+)$`), 20*time.Second)
	tm := startRole(t, bin, append([]string{"taskmanager", "--jobmanager", m[1], "--slots", "2", "--id", "app-tm"}, prog...)...)
	tm.await(t, regexp.MustCompile(`^taskmanager ready: id=app-tm$`), 20*time.Second)

	// The program's code after Execute runs in the JobManager process.
	jm.await(t, regexp.MustCompile(`^seqjob: job [0-9a-f]{32} finished in `), 45*time.Second)
	require.Equal(t, 0, jm.wait(t, 20*time.Second), "the JobManager exits 0 once its job finished")

	require.NoError(t, tm.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, tm.wait(t, 20*time.Second), "the TaskManager exits 0 on SIGTERM")

	checkSeqJobOutput(t, outDir, n, keys)

	t.Run("SIGTERM cancels the job", func(t *testing.T) {
		long := []string{"--", "--out", t.TempDir(), "--checkpoints", t.TempDir(), "--n", "1000000", "--rate", "1000", "--p", "1"}
		jm := startRole(t, bin, append([]string{"jobmanager", "--rpc-address", "127.0.0.1:0", "--rest-address", "127.0.0.1:0"}, long...)...)
		m := jm.await(t, regexp.MustCompile(`^jobmanager ready: rpc=(\S+) rest=(http://\S+)$`), 20*time.Second)
		tm := startRole(t, bin, append([]string{"taskmanager", "--jobmanager", m[1]}, long...)...)
		tm.await(t, regexp.MustCompile(`^taskmanager ready: id=`), 20*time.Second)
		// Running: its first checkpoint completed.
		require.Eventually(t, func() bool {
			ents, _ := filepath.Glob(filepath.Join(long[4], "*", "chk-*", "_metadata"))
			return len(ents) > 0
		}, 30*time.Second, 50*time.Millisecond, "the job runs")
		require.NoError(t, jm.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 1, jm.wait(t, 20*time.Second), "a cancelled job: seqjob exits 1")
		require.NoError(t, tm.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, tm.wait(t, 20*time.Second))
	})
}

// checkSeqJobOutput checks seqjob's committed output is exactly once:
// every key's seq 1..n/keys once, its count equal to it.
func checkSeqJobOutput(t *testing.T, outDir string, n, keys int64) {
	t.Helper()
	ents, err := os.ReadDir(outDir)
	require.NoError(t, err)
	seen := map[[2]int64]bool{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), ".inprogress") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(outDir, e.Name()))
		require.NoError(t, err)
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if l == "" {
				continue
			}
			var r struct{ Key, Seq, Count int64 }
			require.NoError(t, json.Unmarshal([]byte(l), &r), "%s: %q", e.Name(), l)
			k := [2]int64{r.Key, r.Seq}
			require.False(t, seen[k], "key %d seq %d committed twice", r.Key, r.Seq)
			seen[k] = true
			require.True(t, r.Key >= 0 && r.Key < keys && r.Seq >= 1 && r.Seq <= n/keys, "out of range: %+v", r)
			require.Equal(t, r.Seq, r.Count, "key %d seq %d", r.Key, r.Seq)
		}
	}
	require.Len(t, seen, int(n), "records committed")
}
