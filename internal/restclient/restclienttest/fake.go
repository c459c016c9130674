// Package restclienttest is a fake Strom cluster for the tests of the
// client side (restclient, the CLI, a job binary that submits itself): an
// httptest server that answers the REST endpoints the client uses as
// Flink's v1 spec and internal/rest do, from a few jobs in memory, and
// records what it was sent. It checks requests as strictly as the real
// server where the client could get them wrong (multipart order, unknown
// JSON fields), and runs no job.
package restclienttest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"time"
)

// Job is a job the fake knows.
type Job struct {
	ID, Name string
	State    string // RUNNING, FINISHED, CANCELED, FAILED
	Args     []string
	// Parallelism, SavepointPath, AllowNonRestoredState are what the job
	// was started with.
	Parallelism           int
	SavepointPath         string
	AllowNonRestoredState bool
	// RunningPolls is how many execution-result polls answer IN_PROGRESS
	// before the job ends as EndState (FINISHED if empty) with Failure.
	RunningPolls int
	EndState     string
	Failure      string
	Start        time.Time
}

// Submission is a POST /jobs as received.
type Submission struct {
	Request      map[string]any // the "request" part
	JobGraph     []byte         // the JobGraph file
	BinaryName   string
	BinarySHA256 string
	PartOrder    []string // form names, in order
}

// Cluster is the fake. Lock Mu to read or change its fields while it
// serves.
type Cluster struct {
	*httptest.Server

	Mu   sync.Mutex
	Jobs map[string]*Job
	// Binaries are the uploaded binaries' SHA-256 by id.
	Binaries    map[string]string
	Submissions []Submission
	// Savepoints are the savepoint paths that exist (taken or given);
	// Disposed the ones disposed.
	Savepoints map[string]bool
	Disposed   []string
	// DefaultSavepointDir is the cluster's state.savepoints.dir ("":
	// none, so a savepoint without a directory fails as in Flink).
	DefaultSavepointDir string
	// EndState and Failure, when set, are how the jobs started from now on
	// (run or submitted) end.
	EndState, Failure string
	// Requests counts the requests per "METHOD path pattern".
	Requests map[string]int

	next  int
	taken int // savepoints taken, to number them
	ops   map[string]*operation
}

// New starts a fake cluster; Close it at the end of the test.
func New() *Cluster {
	c := &Cluster{Jobs: map[string]*Job{}, Binaries: map[string]string{}, Savepoints: map[string]bool{}, Requests: map[string]int{}, ops: map[string]*operation{}}
	mux := http.NewServeMux()
	for pattern, h := range map[string]func(r *http.Request) (int, any){
		"GET /jobs/overview":                     c.overview,
		"GET /jobs/{jobid}":                      c.job,
		"PATCH /jobs/{jobid}":                    c.cancel,
		"GET /jobs/{jobid}/execution-result":     c.result,
		"POST /jobs/{jobid}/savepoints":          c.savepoint,
		"POST /jobs/{jobid}/stop":                c.savepoint,
		"GET /jobs/{jobid}/savepoints/{trigger}": c.savepointStatus,
		"GET /jobs/{jobid}/checkpoints":          c.checkpoints,
		"POST /savepoint-disposal":               c.dispose,
		"GET /savepoint-disposal/{trigger}":      c.disposeStatus,
		"POST /jars/upload":                      c.upload,
		"POST /jars/{jarid}/run":                 c.run,
		"POST /jobs":                             c.submit,
	} {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			c.Mu.Lock()
			c.Requests[pattern]++
			status, body := h(r)
			c.Mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(body)
		})
	}
	c.Server = httptest.NewServer(mux)
	return c
}

// AddJob adds a running job and returns it.
func (c *Cluster) AddJob(name string) *Job {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	return c.addJobLocked(name)
}

func (c *Cluster) addJobLocked(name string) *Job {
	c.next++
	j := &Job{ID: fmt.Sprintf("%032x", 0xa0000+c.next), Name: name, State: "RUNNING", Start: time.Unix(1700000000, 0)}
	c.Jobs[j.ID] = j
	return j
}

func errs(status int, format string, args ...any) (int, any) {
	return status, map[string][]string{"errors": {fmt.Sprintf(format, args...)}}
}

func (c *Cluster) jobOf(r *http.Request) (*Job, int, any) {
	id := r.PathValue("jobid")
	j, ok := c.Jobs[id]
	if !ok {
		st, body := errs(http.StatusNotFound, "Job %s not found", id)
		return nil, st, body
	}
	return j, 0, nil
}

func (c *Cluster) overview(*http.Request) (int, any) {
	jobs := []map[string]any{}
	for _, j := range c.Jobs {
		jobs = append(jobs, map[string]any{"jid": j.ID, "name": j.Name, "state": j.State, "start-time": j.Start.UnixMilli(),
			"end-time": -1, "duration": 1000, "last-modification": j.Start.UnixMilli(), "tasks": map[string]int{"running": 1}})
	}
	return http.StatusOK, map[string]any{"jobs": jobs}
}

func (c *Cluster) job(r *http.Request) (int, any) {
	j, st, body := c.jobOf(r)
	if j == nil {
		return st, body
	}
	return http.StatusOK, map[string]any{"jid": j.ID, "name": j.Name, "state": j.State, "isStoppable": false,
		"start-time": j.Start.UnixMilli(), "end-time": -1, "duration": 1000, "status-counts": map[string]int{j.State: 2},
		"vertices": []map[string]any{{"id": fmt.Sprintf("%032x", 0), "name": "Source: numbers -> Map", "parallelism": 2, "status": j.State,
			"metrics": map[string]any{"read-records": 0, "write-records": 42}}}}
}

func terminal(state string) bool {
	return state == "FINISHED" || state == "CANCELED" || state == "FAILED"
}

func (c *Cluster) cancel(r *http.Request) (int, any) {
	j, st, body := c.jobOf(r)
	if j == nil {
		return st, body
	}
	if m := r.URL.Query().Get("mode"); m != "" && m != "cancel" {
		return errs(http.StatusBadRequest, "mode %q", m)
	}
	if terminal(j.State) {
		return errs(http.StatusConflict, "Job %s has already ended (%s).", j.ID, j.State)
	}
	j.State = "CANCELED"
	return http.StatusAccepted, map[string]any{}
}

func (c *Cluster) result(r *http.Request) (int, any) {
	j, st, body := c.jobOf(r)
	if j == nil {
		return st, body
	}
	if !terminal(j.State) && j.RunningPolls > 0 {
		j.RunningPolls--
		return http.StatusOK, map[string]any{"status": map[string]string{"id": "IN_PROGRESS"}}
	}
	if !terminal(j.State) {
		j.State = j.EndState
		if j.State == "" {
			j.State = "FINISHED"
		}
	}
	app := map[string]string{"FINISHED": "SUCCEEDED", "FAILED": "FAILED", "CANCELED": "CANCELED"}[j.State]
	res := map[string]any{"id": j.ID, "application-status": app, "accumulator-results": map[string]any{}, "net-runtime": 1234}
	if j.State == "FAILED" {
		res["failure-cause"] = map[string]string{"class": "org.apache.flink.util.SerializedThrowable", "stack-trace": j.Failure}
	}
	return http.StatusOK, map[string]any{"status": map[string]string{"id": "COMPLETED"}, "job-execution-result": res}
}

// decode reads a JSON body strictly, as the real server does.
func decode(r *http.Request, dst any) (int, any, bool) {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil && err != io.EOF {
		st, body := errs(http.StatusBadRequest, "Request did not match expected format: %v", err)
		return st, body, false
	}
	return 0, nil, true
}

// operation is an asynchronous operation: IN_PROGRESS on the first poll,
// then its result.
type operation struct {
	polled   bool
	location string
	failure  string
}

func (c *Cluster) startOp(op *operation) string {
	c.next++
	id := fmt.Sprintf("%032x", 0xf0000+c.next)
	c.ops[id] = op
	return id
}

func (c *Cluster) opStatus(trigger string, withLocation bool) (int, any) {
	op, ok := c.ops[trigger]
	if !ok {
		return errs(http.StatusNotFound, "There is no operation with trigger id %s.", trigger)
	}
	if !op.polled {
		op.polled = true
		return http.StatusOK, map[string]any{"status": map[string]string{"id": "IN_PROGRESS"}}
	}
	info := map[string]any{}
	if op.failure != "" {
		info["failure-cause"] = map[string]string{"class": "org.apache.flink.util.SerializedThrowable", "stack-trace": op.failure}
	} else if withLocation {
		info["location"] = op.location
	}
	return http.StatusOK, map[string]any{"status": map[string]string{"id": "COMPLETED"}, "operation": info}
}

func (c *Cluster) savepoint(r *http.Request) (int, any) {
	j, st, body := c.jobOf(r)
	if j == nil {
		return st, body
	}
	var b struct {
		TargetDirectory  string `json:"target-directory"`
		CancelJob        bool   `json:"cancel-job"`
		TargetDirectory2 string `json:"targetDirectory"`
		Drain            bool   `json:"drain"`
		FormatType       string `json:"formatType"`
		TriggerID        string `json:"triggerId"`
	}
	if st, body, ok := decode(r, &b); !ok {
		return st, body
	}
	stop := strings.HasSuffix(r.URL.Path, "/stop")
	dir := b.TargetDirectory + b.TargetDirectory2
	if dir == "" {
		dir = c.DefaultSavepointDir
	}
	op := &operation{}
	switch {
	case dir == "":
		op.failure = "No savepoint directory was given and state.savepoints.dir is not set."
	case terminal(j.State):
		op.failure = fmt.Sprintf("Job %s is not running (%s).", j.ID, j.State)
	default:
		c.taken++
		op.location = fmt.Sprintf("%s/savepoint-%s-%d", dir, j.ID[:6], c.taken)
		c.Savepoints[op.location] = true
		if stop {
			j.State = "FINISHED"
		}
	}
	return http.StatusAccepted, map[string]string{"request-id": c.startOp(op)}
}

func (c *Cluster) savepointStatus(r *http.Request) (int, any) {
	if _, ok := c.Jobs[r.PathValue("jobid")]; !ok {
		return errs(http.StatusNotFound, "Job %s not found", r.PathValue("jobid"))
	}
	return c.opStatus(r.PathValue("trigger"), true)
}

func (c *Cluster) checkpoints(r *http.Request) (int, any) {
	j, st, body := c.jobOf(r)
	if j == nil {
		return st, body
	}
	cp := map[string]any{"id": 7, "status": "COMPLETED", "is_savepoint": false, "external_path": "file:///tmp/cp/chk-7"}
	return http.StatusOK, map[string]any{"counts": map[string]int{"total": 7, "completed": 7}, "latest": map[string]any{"completed": cp},
		"history": []any{cp}}
}

func (c *Cluster) dispose(r *http.Request) (int, any) {
	var b struct {
		Path *string `json:"savepoint-path"`
	}
	if st, body, ok := decode(r, &b); !ok {
		return st, body
	}
	if b.Path == nil || *b.Path == "" {
		return errs(http.StatusBadRequest, "Request did not match expected format: savepoint-path is missing.")
	}
	op := &operation{}
	if c.Savepoints[*b.Path] {
		delete(c.Savepoints, *b.Path)
		c.Disposed = append(c.Disposed, *b.Path)
	} else {
		op.failure = fmt.Sprintf("savepoint %s: no _metadata: the path holds no savepoint (file does not exist)", *b.Path)
	}
	return http.StatusOK, map[string]string{"request-id": c.startOp(op)}
}

func (c *Cluster) disposeStatus(r *http.Request) (int, any) {
	return c.opStatus(r.PathValue("trigger"), false)
}

func hashOf(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (c *Cluster) upload(r *http.Request) (int, any) {
	mr, err := r.MultipartReader()
	if err != nil {
		return errs(http.StatusBadRequest, "Expected a multipart/form-data upload: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if err != nil {
			return errs(http.StatusBadRequest, "The upload has no field \"jarfile\".")
		}
		if part.FormName() != "jarfile" {
			continue
		}
		sum, err := hashOf(part)
		if err != nil {
			return errs(http.StatusBadRequest, "reading the upload: %v", err)
		}
		c.next++
		id := fmt.Sprintf("%08x_%s", c.next, path.Base(part.FileName()))
		c.Binaries[id] = sum
		return http.StatusOK, map[string]string{"filename": "/tmp/strom-web/jars/" + id, "status": "success"}
	}
}

func (c *Cluster) run(r *http.Request) (int, any) {
	id := r.PathValue("jarid")
	if _, ok := c.Binaries[id]; !ok {
		return errs(http.StatusNotFound, "Job binary %q does not exist.", id)
	}
	var b struct {
		EntryClass            string   `json:"entryClass"`
		ProgramArgs           string   `json:"programArgs"`
		ProgramArgsList       []string `json:"programArgsList"`
		Parallelism           *int     `json:"parallelism"`
		JobID                 string   `json:"jobId"`
		AllowNonRestoredState *bool    `json:"allowNonRestoredState"`
		SavepointPath         string   `json:"savepointPath"`
		RestoreMode           string   `json:"restoreMode"`
	}
	if st, body, ok := decode(r, &b); !ok {
		return st, body
	}
	if b.SavepointPath != "" && !c.Savepoints[b.SavepointPath] {
		return errs(http.StatusBadRequest, "Savepoint %s does not exist.", b.SavepointPath)
	}
	j := c.addJobLocked(id)
	j.Args, j.SavepointPath = b.ProgramArgsList, b.SavepointPath
	if b.Parallelism != nil {
		j.Parallelism = *b.Parallelism
	}
	if b.AllowNonRestoredState != nil {
		j.AllowNonRestoredState = *b.AllowNonRestoredState
	}
	j.RunningPolls, j.EndState, j.Failure = 2, c.EndState, c.Failure
	return http.StatusOK, map[string]string{"jobid": j.ID}
}

// submit is POST /jobs: "request" first, then the files it names.
func (c *Cluster) submit(r *http.Request) (int, any) {
	mr, err := r.MultipartReader()
	if err != nil {
		return errs(http.StatusBadRequest, "Expected a multipart/form-data upload: %v", err)
	}
	var s Submission
	var req struct {
		JobGraphFileName string   `json:"jobGraphFileName"`
		JobJarFileNames  []string `json:"jobJarFileNames"`
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errs(http.StatusBadRequest, "multipart: %v", err)
		}
		s.PartOrder = append(s.PartOrder, part.FormName())
		switch {
		case s.Request == nil:
			if part.FormName() != "request" {
				return errs(http.StatusBadRequest, "The part \"request\" must come first; got %q.", part.FormName())
			}
			data, _ := io.ReadAll(part)
			if err := json.Unmarshal(data, &s.Request); err != nil {
				return errs(http.StatusBadRequest, "request: %v", err)
			}
			_ = json.Unmarshal(data, &req)
			if len(req.JobJarFileNames) != 1 {
				return errs(http.StatusBadRequest, "jobJarFileNames must name exactly one binary")
			}
		case part.FileName() == req.JobGraphFileName:
			s.JobGraph, _ = io.ReadAll(part)
		case part.FileName() == req.JobJarFileNames[0]:
			s.BinaryName = part.FileName()
			if s.BinarySHA256, err = hashOf(part); err != nil {
				return errs(http.StatusBadRequest, "reading the binary: %v", err)
			}
		default:
			return errs(http.StatusBadRequest, "Unexpected part %q", part.FileName())
		}
	}
	if s.JobGraph == nil || s.BinarySHA256 == "" {
		return errs(http.StatusBadRequest, "The submission lacks the JobGraph or the binary.")
	}
	c.Submissions = append(c.Submissions, s)
	var jg struct {
		JobName string
	}
	_ = json.Unmarshal(s.JobGraph, &jg)
	j := c.addJobLocked(jg.JobName)
	if id, _ := s.Request["jobId"].(string); id != "" {
		delete(c.Jobs, j.ID)
		j.ID = id
		c.Jobs[id] = j
	}
	j.RunningPolls, j.EndState, j.Failure = 1, c.EndState, c.Failure
	return http.StatusAccepted, map[string]string{"jobUrl": "/jobs/" + j.ID}
}
