package provider

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperEnv switches the test binary into a stand-in TaskManager: the
// tests start it as their worker command, so they run real child
// processes without building anything.
const helperEnv = "STROM_PROVIDER_TEST_HELPER"

// runEnv marks every process the tests start (and what those start) with
// the test process's pid, so leftovers can be found in /proc.
const runEnv = "STROM_PROVIDER_TEST_RUN"

// TestMain runs the helper process when asked to, and otherwise the tests,
// checking that none leaves a goroutine behind (every supervisor must end
// with Close) or a process running.
func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helper(mode, os.Args[1:])
		return
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	// Also after a failure: what a failed test left is killed here.
	if pids := leftovers(); len(pids) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: processes left running (now killed): %v\n", pids)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		code = 1
	}
	os.Exit(code)
}

// leftovers lists the live processes that carry this test run's mark.
func leftovers() []int {
	mark := []byte(fmt.Sprintf("%s=%d\x00", runEnv, os.Getpid()))
	dirs, _ := os.ReadDir("/proc")
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err == nil && bytes.Contains(env, mark) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// helper is a worker process. Its args are the command template's
// ("worker", id, slots). Modes:
//
//	serve     print who it is to stdout and stderr, exit 0 on SIGTERM
//	stubborn  the same, but ignore SIGTERM (only SIGKILL ends it) and say so
//	crash     print and exit 3 at once
//	spawn     start a stubborn child of its own (a job-worker process),
//	          print its pid, then serve
func helper(mode string, args []string) {
	fmt.Printf("helper %s args=%v worker=%s pid=%d\n", mode, args, os.Getenv("STROM_WORKER_ID"), os.Getpid())
	fmt.Fprintln(os.Stderr, "helper stderr line")
	switch mode {
	case "crash":
		os.Exit(3)
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		fmt.Printf("pid=%d ignores SIGTERM\n", os.Getpid())
		// Bounded, so that a failing test leaves nothing for long.
		time.Sleep(2 * time.Minute)
		return
	case "spawn":
		child := exec.Command(os.Args[0], "child")
		child.Env = append(os.Environ(), helperEnv+"=stubborn")
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "spawn:", err)
			os.Exit(1)
		}
		fmt.Printf("grandchild pid=%d\n", child.Process.Pid)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	<-term
	fmt.Println("helper terminated")
}
