// Package jobstore keeps the jobs a Dispatcher has accepted and not yet
// finished, so that a Dispatcher started after the JobManager died (or a
// new leader, once leader election exists) restarts them: Flink's
// JobGraphStore of its HA services. The Dispatcher puts a job's record
// before it answers the submission and removes it once the job reached a
// terminal state; whatever a store lists when a Dispatcher starts is
// therefore a job that was accepted and never ended.
package jobstore

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/strom-dev/strom/internal/jobgraph"
)

// Record is what the store keeps of one job: enough to start a JobMaster
// for it again in a process that never saw the submission.
type Record struct {
	JobID    string             `json:"jobId"`
	JobName  string             `json:"jobName"`
	JobGraph *jobgraph.JobGraph `json:"jobGraph"`
	// Incarnation counts the JobMasters started for the job before the
	// current one: 0 for the one started at submission, n for the n-th
	// recovery. A recovering Dispatcher stores n+1 before it starts the
	// new JobMaster, whose execution attempts start above every attempt
	// an earlier one can have used (scheduler.AttemptBase).
	Incarnation int `json:"incarnation"`
	// Extra is what the process that runs the Dispatcher keeps beside
	// the graph (a job binary's id, program arguments, the savepoint to
	// resume from); the store does not read it.
	Extra map[string]string `json:"extra,omitempty"`
}

// Store keeps job records. Implementations are safe for concurrent use.
//
// Contract: Put replaces the record of the same JobID, and once it
// returned nil the record survives whatever kills the process that
// called it (for the directory store: it is on disk, complete). Remove of
// an unknown job is not an error. List returns every record put and not
// removed, ordered by JobID; one record that cannot be read fails List
// with an error naming it (a job must never be dropped silently).
type Store interface {
	Put(r Record) error
	Remove(jobID string) error
	List() ([]Record, error)
}

// ErrCorrupt is wrapped by the errors of records that cannot be read.
var ErrCorrupt = errors.New("corrupt job record")

// Memory is a Store in memory: it outlives the roles of an embedded
// cluster (they are killed and started again over it), not the process.
type Memory struct {
	mu   sync.Mutex
	jobs map[string]Record
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{jobs: map[string]Record{}} }

// Put implements Store.
func (m *Memory) Put(r Record) error {
	if r.JobID == "" {
		return errors.New("job store: record without a job id")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r.Extra = cloneMap(r.Extra)
	m.jobs[r.JobID] = r
	return nil
}

// Remove implements Store.
func (m *Memory) Remove(jobID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.jobs, jobID)
	return nil
}

// List implements Store.
func (m *Memory) List() ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Record, 0, len(m.jobs))
	for _, r := range m.jobs {
		r.Extra = cloneMap(r.Extra)
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].JobID < out[j].JobID })
	return out, nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// validID refuses job ids that could name a path outside the store's
// directory.
func validID(id string) error {
	if id == "" || id == "." || id == ".." || slices.ContainsFunc([]rune(id), func(r rune) bool { return r == '/' || r == '\\' || r == 0 }) {
		return fmt.Errorf("job store: job id %q cannot name a file", id)
	}
	return nil
}
