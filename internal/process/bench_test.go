package process_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The figures of issue 12 item 9, with real processes (BENCHMARKS.md,
// "The distributed runtime with real processes"):
//
//	go test ./internal/process -run xxx -bench . -benchtime 3x

// procCPU is a process's CPU time with that of its waited-for children
// (a TaskManager's job workers), from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	// After the comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// rssKB is a process's resident set in KiB.
func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func (c *cluster) clusterCPU() time.Duration {
	d := procCPU(c.jm.cmd.Process.Pid)
	for _, id := range c.liveTMs() {
		d += procCPU(c.tm(id).cmd.Process.Pid)
	}
	return d
}

// BenchmarkNexmarkOnTwoTaskManagers runs q0, q5 and q8 at parallelism 2
// over two TaskManager processes of one slot each and reports events per
// CPU-second of every process (JobManager, TaskManagers, their job
// workers, the submitting client), next to the same query embedded, on
// both data planes.
func BenchmarkNexmarkOnTwoTaskManagers(b *testing.B) {
	const events = 10_000_000
	for _, q := range []string{"q0", "q5", "q8"} {
		// cluster: one multiplexed connection between the TaskManagers
		// (the default); cluster-direct: --direct-data-connections.
		for _, where := range []string{"embedded", "cluster", "cluster-direct"} {
			b.Run(q+"/"+where, func(b *testing.B) {
				var c *cluster
				switch where {
				case "cluster":
					c = startCluster(b, 2, 1)
				case "cluster-direct":
					c = startClusterTMArgs(b, 2, 1, []string{"--direct-data-connections"})
				}
				var cpu, wall time.Duration
				for range b.N {
					args := []string{"nexmark", "--query", q, "--events", fmt.Sprint(events), "--parallelism", "2", "--json"}
					if c != nil {
						args = append(args, "--cluster", c.rest)
					} else {
						args = append(args, "--taskmanagers", "2")
					}
					var before time.Duration
					if c != nil {
						before = c.clusterCPU()
					}
					start := time.Now()
					cmd := exec.Command(bins.strom, args...)
					out, err := cmd.Output()
					if err != nil {
						b.Fatalf("%s: %v", args, err)
					}
					wall += time.Since(start)
					var sum struct {
						CPU float64 `json:"cpu_seconds"`
					}
					lines := strings.Split(strings.TrimSpace(string(out)), "\n")
					if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
						b.Fatal(err, string(out))
					}
					// The client's own CPU (it generates nothing on a
					// cluster; embedded, it is everything).
					cpu += time.Duration(sum.CPU * float64(time.Second))
					if c != nil {
						// The job workers' CPU counts once their
						// TaskManager has waited for them.
						for _, id := range c.liveTMs() {
							waitNoChildren(b, c.tm(id).cmd.Process.Pid)
						}
						cpu += c.clusterCPU() - before
					}
				}
				b.ReportMetric(float64(events)*float64(b.N)/cpu.Seconds(), "events/CPU-s")
				b.ReportMetric(float64(events)*float64(b.N)/wall.Seconds(), "events/s")
			})
		}
	}
}

// BenchmarkTaskManagerKillRecovery SIGKILLs the TaskManager running a
// source subtask of a rate-limited job (checkpoints every 100 ms) and
// reports how long until every task runs again and until the first
// checkpoint after the restart completes — the moment an exactly-once
// sink commits output again, the replay since the last checkpoint done.
func BenchmarkTaskManagerKillRecovery(b *testing.B) {
	c := startCluster(b, 3, 1, "--heartbeat-timeout", "5s")
	var toRunning, toCheckpoint []float64
	for range b.N {
		job := newSeqJob(b, 400000, 4, 2, "--rate", "20000", "--interval", "100ms")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		done := make(chan error, 1)
		go func() {
			_, err := job.run(ctx, c.rest)
			done <- err
		}()
		id := waitRunningJob(b, c)
		ck0 := waitCheckpoints(b, c, id, 3, 0)
		// A TaskManager with a worker: it runs tasks of the job.
		var victim string
		for _, tm := range c.liveTMs() {
			if strings.Contains(c.tm(tm).stderr(), "job worker started") {
				victim = tm
			}
		}
		killed := time.Now()
		c.tm(victim).kill()
		// The failure first (the old attempt's tasks still show RUNNING
		// until the JobManager has noticed), then every task running.
		var running time.Time
		seenDown := false
		for running.IsZero() {
			all, err := allRunning(c, id)
			switch {
			case err != nil:
			case !all:
				seenDown = true
			case seenDown:
				running = time.Now()
			}
			time.Sleep(2 * time.Millisecond)
		}
		waitCheckpoints(b, c, id, 1, ck0+1)
		committed := time.Now()
		toRunning = append(toRunning, float64(running.Sub(killed).Milliseconds()))
		toCheckpoint = append(toCheckpoint, float64(committed.Sub(killed).Milliseconds()))
		c.startTM()
		cancel()
		<-done
	}
	b.ReportMetric(median(toRunning), "ms-to-running")
	b.ReportMetric(median(toCheckpoint), "ms-to-checkpoint")
}

// BenchmarkIdleRSS reports the resident memory of an idle TaskManager and
// of the JobManager, before and after a job ran.
func BenchmarkIdleRSS(b *testing.B) {
	for range b.N {
		c := startCluster(b, 1, 2)
		time.Sleep(2 * time.Second)
		tm := c.tm(c.liveTMs()[0])
		b.ReportMetric(float64(rssKB(tm.cmd.Process.Pid))/1024, "TM-MB")
		b.ReportMetric(float64(rssKB(c.jm.cmd.Process.Pid))/1024, "JM-MB")
		job := newSeqJob(b, 20000, 2, 2, "--rate", "0")
		if out, err := job.run(context.Background(), c.rest); err != nil {
			b.Fatal(err, out)
		}
		time.Sleep(2 * time.Second)
		b.ReportMetric(float64(rssKB(tm.cmd.Process.Pid))/1024, "TM-after-job-MB")
		b.ReportMetric(float64(rssKB(c.jm.cmd.Process.Pid))/1024, "JM-after-job-MB")
	}
}

// allRunning says whether the job runs with every subtask RUNNING.
func allRunning(c *cluster, id string) (bool, error) {
	var j struct {
		State    string `json:"state"`
		Vertices []struct {
			Parallelism int            `json:"parallelism"`
			Tasks       map[string]int `json:"tasks"`
		} `json:"vertices"`
	}
	if err := c.get("/jobs/"+id, &j); err != nil {
		return false, err
	}
	if j.State != "RUNNING" {
		return false, nil
	}
	for _, v := range j.Vertices {
		if v.Tasks["RUNNING"] != v.Parallelism {
			return false, nil
		}
	}
	return true, nil
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// waitRunningJob returns the id of the cluster's running job.
func waitRunningJob(b *testing.B, c *cluster) string {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var o struct {
			Jobs []struct {
				ID    string `json:"jid"`
				State string `json:"state"`
			} `json:"jobs"`
		}
		if err := c.get("/jobs/overview", &o); err == nil {
			for _, j := range o.Jobs {
				if j.State == "RUNNING" {
					return j.ID
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("no running job")
	return ""
}

// waitCheckpoints waits until the job's latest completed checkpoint id is
// at least min and n checkpoints completed, and returns that id.
func waitCheckpoints(b *testing.B, c *cluster, id string, n int, min int64) int64 {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var st struct {
			Counts struct {
				Completed int `json:"completed"`
			} `json:"counts"`
			Latest struct {
				Completed *struct {
					ID int64 `json:"id"`
				} `json:"completed"`
			} `json:"latest"`
		}
		if err := c.get("/jobs/"+id+"/checkpoints", &st); err == nil && st.Latest.Completed != nil &&
			st.Counts.Completed >= n && st.Latest.Completed.ID >= min {
			return st.Latest.Completed.ID
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatal("checkpoints did not complete")
	return 0
}

// waitNoChildren waits until process pid has no child processes.
func waitNoChildren(b *testing.B, pid int) {
	want := fmt.Sprint(pid)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		found := false
		procs, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, p := range procs {
			st, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
			if len(f) > 1 && f[1] == want {
				found = true
				break
			}
		}
		if !found {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("process %d still has children after 20s", pid)
}
