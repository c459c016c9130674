package fdpass_test

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/fdpass"
)

// taskManager is the parent's side as a TaskManager runs it: one TCP data
// port; each accepted connection's preamble is read under a deadline and
// the connection handed to the worker of its job.
type taskManager struct {
	ln      net.Listener
	workers map[string]*fdpass.Sender
	wg      sync.WaitGroup

	mu     sync.Mutex
	errs   []error  // preamble and Send errors, in order
	jobIDs []string // jobs of the connections handed over
}

func startTaskManager(t *testing.T, workers map[string]*fdpass.Sender) *taskManager {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	tm := &taskManager{ln: ln, workers: workers}
	tm.wg.Add(1)
	go tm.acceptLoop()
	t.Cleanup(tm.stop)
	return tm
}

func (tm *taskManager) addr() string { return tm.ln.Addr().String() }

func (tm *taskManager) acceptLoop() {
	defer tm.wg.Done()
	for {
		c, err := tm.ln.Accept()
		if err != nil {
			return
		}
		tm.wg.Add(1)
		go func() {
			defer tm.wg.Done()
			tm.route(c)
		}()
	}
}

func (tm *taskManager) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	job, err := fdpass.ReadPreamble(c)
	if err == nil {
		_ = c.SetReadDeadline(time.Time{})
		w, ok := tm.workers[job]
		if !ok {
			_ = c.Close()
			tm.record(job, net.UnknownNetworkError("no worker for job "+job))
			return
		}
		err = w.Send(c)
	} else {
		_ = c.Close()
	}
	tm.record(job, err)
}

func (tm *taskManager) record(job string, err error) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if err != nil {
		tm.errs = append(tm.errs, err)
		return
	}
	tm.jobIDs = append(tm.jobIDs, job)
}

func (tm *taskManager) errors() []error {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return append([]error(nil), tm.errs...)
}

func (tm *taskManager) stop() {
	_ = tm.ln.Close()
	tm.wg.Wait()
}

// upperEcho serves a worker's listener: every accepted connection gets
// each line it sends back in upper case, followed by the job's name.
// It returns when Accept fails, with that error.
func upperEcho(l net.Listener, tag string) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if _, err := c.Write([]byte(tag + ":" + strings.ToUpper(line))); err != nil {
					return
				}
			}
		}()
	}
}

// exchange dials tmAddr for job, sends line and returns the reply line.
// It returns errors rather than failing the test: it runs on many
// goroutines at once.
func exchange(tmAddr, job, line string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := fdpass.Dialer(job, nil)(ctx, tmAddr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(got, "\n"), err
}
