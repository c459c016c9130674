package rest

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// table is every endpoint of the API. Paths are Flink's.
func (s *Server) table() []route {
	return []route{
		{"/config", map[string]apiHandler{"GET": s.getConfig}},
		{"/overview", map[string]apiHandler{"GET": s.getOverview}},
		{"/jobs", map[string]apiHandler{"GET": s.getJobs, "POST": s.postJob}},
		{"/jobs/overview", map[string]apiHandler{"GET": s.getJobsOverview}},
		{"/jobs/{jobid}", map[string]apiHandler{"GET": s.getJob, "PATCH": s.patchJob}},
		{"/jobs/{jobid}/status", map[string]apiHandler{"GET": s.getJobStatus}},
		{"/jobs/{jobid}/execution-result", map[string]apiHandler{"GET": s.getExecutionResult}},
		{"/jobs/{jobid}/plan", map[string]apiHandler{"GET": s.getJobPlan}},
		{"/jobs/{jobid}/exceptions", map[string]apiHandler{"GET": s.getExceptions}},
		{"/jobs/{jobid}/config", map[string]apiHandler{"GET": s.getJobConfig}},
		{"/jobs/{jobid}/checkpoints", map[string]apiHandler{"GET": s.getCheckpoints, "POST": s.postCheckpoint}},
		{"/jobs/{jobid}/checkpoints/{triggerid}", map[string]apiHandler{"GET": s.getCheckpointStatus}},
		{"/jobs/{jobid}/checkpoints/config", map[string]apiHandler{"GET": s.getCheckpointConfig}},
		{"/jobs/{jobid}/checkpoints/details/{checkpointid}", map[string]apiHandler{"GET": s.getCheckpoint}},
		{"/jobs/{jobid}/vertices/{vertexid}", map[string]apiHandler{"GET": s.getVertex}},
		{"/jobs/{jobid}/vertices/{vertexid}/backpressure", map[string]apiHandler{"GET": s.getBackPressure}},
		{"/jobs/{jobid}/vertices/{vertexid}/watermarks", map[string]apiHandler{"GET": s.getWatermarks}},
		{"/jobs/{jobid}/savepoints", map[string]apiHandler{"POST": s.postSavepoint}},
		{"/jobs/{jobid}/savepoints/{triggerid}", map[string]apiHandler{"GET": s.getSavepointStatus}},
		{"/jobs/{jobid}/stop", map[string]apiHandler{"POST": s.postStop}},
		{"/savepoint-disposal", map[string]apiHandler{"POST": s.postDisposal}},
		{"/savepoint-disposal/{triggerid}", map[string]apiHandler{"GET": s.getDisposalStatus}},
		{"/taskmanagers", map[string]apiHandler{"GET": s.getTaskManagers}},
		{"/taskmanagers/{taskmanagerid}", map[string]apiHandler{"GET": s.getTaskManager}},
		{"/jars", map[string]apiHandler{"GET": s.getJars}},
		{"/jars/upload", map[string]apiHandler{"POST": s.postJar}},
		{"/jars/{jarid}", map[string]apiHandler{"DELETE": s.deleteJar}},
		{"/jars/{jarid}/plan", map[string]apiHandler{"GET": s.jarPlan, "POST": s.jarPlan}},
		{"/jars/{jarid}/run", map[string]apiHandler{"POST": s.jarRun}},
	}
}

// ms is a time in Unix milliseconds, -1 for the zero time (Flink's "not
// yet" / "never").
func ms(t time.Time) int64 {
	if t.IsZero() {
		return -1
	}
	return t.UnixMilli()
}

// duration is from start to end, or to now while end is zero; -1 before
// start.
func (s *Server) duration(start, end time.Time) int64 {
	if start.IsZero() {
		return -1
	}
	if end.IsZero() {
		end = s.cfg.Now()
	}
	return end.Sub(start).Milliseconds()
}

// hex32 reports whether id has the shape of Flink's ids (JobID,
// JobVertexID, TriggerId).
func hex32(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// idParam returns path parameter name, which must be 32 hex digits.
func idParam(r *http.Request, name string) (string, error) {
	id := r.PathValue(name)
	if !hex32(id) {
		return "", errorf(http.StatusBadRequest, "Bad request, could not parse parameter %s: %q is not a 32-character hexadecimal string.", name, id)
	}
	return id, nil
}

func (s *Server) getConfig(*http.Request) (int, any, error) {
	now := s.cfg.Now()
	name, off := now.Zone()
	return http.StatusOK, dashboardConfig{
		RefreshInterval: s.cfg.RefreshInterval.Milliseconds(),
		TimezoneName:    name, TimezoneOffset: off * 1000,
		FlinkVersion: s.cfg.Version, FlinkRevision: s.cfg.Revision,
		Features: map[string]any{"web-submit": s.cfg.WebSubmit, "web-cancel": true, "web-history": false},
	}, nil
}

func terminal(st JobState) bool { return st == "FINISHED" || st == "FAILED" || st == "CANCELED" }

func (s *Server) getOverview(r *http.Request) (int, any, error) {
	ctx := r.Context()
	jobs, err := s.cfg.Cluster.Jobs(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("listing jobs: %w", err)
	}
	tms, err := s.cfg.Cluster.TaskManagers(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("listing taskmanagers: %w", err)
	}
	o := clusterOverview{TaskManagers: len(tms), FlinkVersion: s.cfg.Version, FlinkCommit: s.cfg.Revision}
	for _, tm := range tms {
		o.SlotsTotal += tm.Slots
		o.SlotsAvailable += tm.FreeSlots
	}
	for _, j := range jobs {
		switch j.State {
		case "FINISHED":
			o.JobsFinished++
		case "CANCELED":
			o.JobsCancelled++
		case "FAILED":
			o.JobsFailed++
		default:
			o.JobsRunning++
		}
	}
	return http.StatusOK, o, nil
}

func (s *Server) getJobs(r *http.Request) (int, any, error) {
	jobs, err := s.cfg.Cluster.Jobs(r.Context())
	if err != nil {
		return 0, nil, fmt.Errorf("listing jobs: %w", err)
	}
	out := jobsList{Jobs: []jobIDWithStatus{}}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, jobIDWithStatus{ID: j.ID, Status: j.State})
	}
	return http.StatusOK, out, nil
}

// taskCounts is Flink's per-state task count map: every ExecutionState,
// lower case for the overview ("tasks") and upper case for details
// ("status-counts", a vertex's "tasks").
func taskCounts(m map[ExecState]int, upper bool) map[string]int {
	out := make(map[string]int, len(execStates))
	for _, st := range execStates {
		k := string(st)
		if !upper {
			k = strings.ToLower(k)
		}
		out[k] = m[st]
	}
	return out
}

func (s *Server) overviewOf(j JobSummary) jobOverview {
	per := make([]int, len(execStates))
	total := 0
	for i, st := range execStates {
		per[i] = j.Tasks[st]
		total += per[i]
	}
	tasks := taskCounts(j.Tasks, false)
	tasks["total"] = total
	return jobOverview{
		JID: j.ID, Name: j.Name, State: j.State, StartTime: ms(j.Start), EndTime: ms(j.End),
		Duration: s.duration(j.Start, j.End), LastModification: ms(j.LastModified), Tasks: tasks,
		JobID: j.ID, JobName: j.Name, Status: j.State, StartTimeSpec: ms(j.Start), EndTimeSpec: ms(j.End),
		LastUpdateTime: ms(j.LastModified), TasksPerState: per, NumTasks: total,
	}
}

func (s *Server) getJobsOverview(r *http.Request) (int, any, error) {
	jobs, err := s.cfg.Cluster.Jobs(r.Context())
	if err != nil {
		return 0, nil, fmt.Errorf("listing jobs: %w", err)
	}
	out := jobsOverview{Jobs: []jobOverview{}}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, s.overviewOf(j))
	}
	return http.StatusOK, out, nil
}

// job looks up the job of the request's {jobid}.
func (s *Server) job(r *http.Request) (Job, error) {
	id, err := idParam(r, "jobid")
	if err != nil {
		return Job{}, err
	}
	j, err := s.cfg.Cluster.Job(r.Context(), id)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", id, err)
	}
	return j, nil
}

// vertexState is the state of a vertex from its subtasks' (Flink's
// ExecutionJobVertex.getAggregateJobVertexState): all in one state → that
// state; else the first of FAILED, CANCELING, CANCELED, RUNNING,
// INITIALIZING, DEPLOYING, SCHEDULED, FINISHED that any subtask is in.
func vertexState(v Vertex) ExecState {
	if len(v.Subtasks) == 0 {
		return "CREATED"
	}
	counts := map[ExecState]int{}
	for _, st := range v.Subtasks {
		counts[st.State]++
	}
	if len(counts) == 1 {
		return v.Subtasks[0].State
	}
	for _, st := range []ExecState{"FAILED", "CANCELING", "CANCELED", "RECONCILING", "RUNNING", "INITIALIZING", "DEPLOYING", "SCHEDULED", "FINISHED"} {
		if counts[st] > 0 {
			return st
		}
	}
	return "CREATED"
}

// vertexTimes are the earliest start and, once every subtask has ended,
// the latest end of a vertex's subtasks.
func vertexTimes(v Vertex) (start, end time.Time) {
	ended := len(v.Subtasks) > 0
	for _, st := range v.Subtasks {
		if !st.Start.IsZero() && (start.IsZero() || st.Start.Before(start)) {
			start = st.Start
		}
		if st.End.IsZero() {
			ended = false
		} else if st.End.After(end) {
			end = st.End
		}
	}
	if !ended {
		end = time.Time{}
	}
	return start, end
}

func ioOf(sts ...Subtask) ioMetrics {
	m := ioMetrics{ReadBytesComplete: true, WriteBytesComplete: true, ReadRecordsComplete: true, WriteRecordsComplete: true}
	for _, st := range sts {
		m.ReadBytes += st.BytesIn
		m.WriteBytes += st.BytesOut
		m.ReadRecords += st.RecordsIn
		m.WriteRecords += st.RecordsOut
	}
	return m
}

func (s *Server) getJob(r *http.Request) (int, any, error) {
	j, err := s.job(r)
	if err != nil {
		return 0, nil, err
	}
	d := jobDetails{
		JID: j.ID, Name: j.Name, IsStoppable: j.Stoppable, State: j.State, StartTime: ms(j.Start), EndTime: ms(j.End),
		Duration: s.duration(j.Start, j.End), MaxParallelism: j.MaxParallelism, Now: s.cfg.Now().UnixMilli(),
		Timestamps: map[string]int64{}, Vertices: []jobVertexSummary{}, StatusCounts: taskCounts(j.Tasks, true), Plan: j.Plan,
	}
	if d.Plan.Nodes == nil {
		d.Plan.Nodes = []PlanNode{}
	}
	for st, t := range j.Timestamps {
		d.Timestamps[string(st)] = t.UnixMilli()
	}
	for _, v := range j.Vertices {
		counts := map[ExecState]int{}
		for _, st := range v.Subtasks {
			counts[st.State]++
		}
		start, end := vertexTimes(v)
		d.Vertices = append(d.Vertices, jobVertexSummary{
			ID: v.ID, Name: v.Name, MaxParallelism: v.MaxParallelism, Parallelism: v.Parallelism, Status: vertexState(v),
			StartTime: ms(start), EndTime: ms(end), Duration: s.duration(start, end), Tasks: taskCounts(counts, true), Metrics: ioOf(v.Subtasks...),
		})
	}
	return http.StatusOK, d, nil
}

func (s *Server) getJobStatus(r *http.Request) (int, any, error) {
	j, err := s.job(r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]JobState{"status": j.State}, nil
}

// getExecutionResult is how an attached client (strom run without -d, as
// flink run) waits for its job: IN_PROGRESS until the job has ended, then
// its result.
func (s *Server) getExecutionResult(r *http.Request) (int, any, error) {
	j, err := s.job(r)
	if err != nil {
		return 0, nil, err
	}
	if !terminal(j.State) {
		return http.StatusOK, executionResult{Status: queueStatus{ID: "IN_PROGRESS"}}, nil
	}
	app := map[JobState]string{"FINISHED": "SUCCEEDED", "FAILED": "FAILED", "CANCELED": "CANCELED"}[j.State]
	res := &jobResult{ID: j.ID, ApplicationStatus: app, Accumulators: map[string]any{}, NetRuntime: s.duration(j.Start, j.End),
		JobID: j.ID, AppStatus: app, AccumulatorResults: map[string]any{}, NetRuntimeSpec: s.duration(j.Start, j.End), Success: app == "SUCCEEDED"}
	if d, err := s.cfg.Cluster.Job(r.Context(), j.ID); err == nil {
		// Flink's accumulator values are serialized Java objects; these
		// are decimal strings, under the wire name only (the spec's
		// accumulatorResults wants Flink's serialization).
		for _, op := range d.Operators {
			res.Accumulators["numRecordsIn."+op.Name] = strconv.FormatInt(op.RecordsIn, 10)
			res.Accumulators["numRecordsOut."+op.Name] = strconv.FormatInt(op.RecordsOut, 10)
		}
		res.Accumulators["numRestarts"] = strconv.Itoa(d.Restarts)
	}
	if j.State == "FAILED" {
		exs, err := s.cfg.Cluster.Exceptions(r.Context(), j.ID)
		if err != nil {
			return 0, nil, fmt.Errorf("exceptions of job %s: %w", j.ID, err)
		}
		msg := "the job failed"
		if len(exs) > 0 {
			msg = exs[0].Message
		}
		res.FailureCause = causeOf(msg)
		res.SerializedThrowable = res.FailureCause
	}
	return http.StatusOK, executionResult{Status: queueStatus{ID: "COMPLETED"}, Result: res}, nil
}

// patchJob terminates a job: mode=cancel (the default, and the only mode
// Flink 1.16 supports; "stop" is refused as there).
func (s *Server) patchJob(r *http.Request) (int, any, error) {
	id, err := idParam(r, "jobid")
	if err != nil {
		return 0, nil, err
	}
	switch mode := r.URL.Query().Get("mode"); strings.ToLower(mode) {
	case "", "cancel":
	case "stop":
		return 0, nil, errorf(http.StatusBadRequest, "Termination mode %q is not supported; use POST /jobs/%s/stop.", mode, id)
	default:
		return 0, nil, errorf(http.StatusBadRequest, "Bad request, could not parse parameter mode: %q is not one of cancel, stop.", mode)
	}
	if err := s.cfg.Cluster.CancelJob(r.Context(), id); err != nil {
		return 0, nil, fmt.Errorf("cancelling job %s: %w", id, err)
	}
	return http.StatusAccepted, struct{}{}, nil
}

func (s *Server) getJobPlan(r *http.Request) (int, any, error) {
	j, err := s.job(r)
	if err != nil {
		return 0, nil, err
	}
	if j.Plan.Nodes == nil {
		j.Plan.Nodes = []PlanNode{}
	}
	return http.StatusOK, planInfo{Plan: j.Plan}, nil
}

func exceptionOf(e Exception) exceptionInfo {
	return exceptionInfo{ExceptionName: e.Name, Stacktrace: e.Message, Timestamp: e.Time.UnixMilli(), TaskName: e.TaskName, Location: e.Location}
}

func (s *Server) getExceptions(r *http.Request) (int, any, error) {
	id, err := idParam(r, "jobid")
	if err != nil {
		return 0, nil, err
	}
	limit := math.MaxInt
	if v := r.URL.Query().Get("maxExceptions"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, nil, errorf(http.StatusBadRequest, "Bad request, could not parse parameter maxExceptions: %q is not a non-negative integer.", v)
		}
		limit = n
	}
	exs, err := s.cfg.Cluster.Exceptions(r.Context(), id)
	if err != nil {
		return 0, nil, fmt.Errorf("exceptions of job %s: %w", id, err)
	}
	out := jobExceptions{AllExceptions: []executionException{}, History: exceptionHistory{Entries: []rootExceptionInfo{}}}
	if len(exs) > 0 {
		out.RootException, out.Timestamp = exs[0].Message, exs[0].Time.UnixMilli()
	}
	for i, e := range exs {
		if i >= limit {
			out.Truncated, out.History.Truncated = true, true
			break
		}
		root := rootExceptionInfo{exceptionInfo: exceptionOf(e), Concurrent: []exceptionInfo{}}
		for _, c := range e.Concurrent {
			root.Concurrent = append(root.Concurrent, exceptionOf(c))
		}
		out.History.Entries = append(out.History.Entries, root)
		if e.TaskName != "" {
			out.AllExceptions = append(out.AllExceptions, executionException{Exception: e.Message, Task: e.TaskName, Location: e.Location, Timestamp: e.Time.UnixMilli()})
		}
	}
	return http.StatusOK, out, nil
}

func (s *Server) getJobConfig(r *http.Request) (int, any, error) {
	j, err := s.job(r)
	if err != nil {
		return 0, nil, err
	}
	c, err := s.cfg.Cluster.JobConfig(r.Context(), j.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("config of job %s: %w", j.ID, err)
	}
	ec := executionConfig{ExecutionMode: c.ExecutionMode, RestartStrategy: c.RestartStrategy, JobParallelism: c.Parallelism,
		ObjectReuseMode: c.ObjectReuse, UserConfig: c.UserConfig}
	if ec.UserConfig == nil {
		ec.UserConfig = map[string]string{}
	}
	return http.StatusOK, jobConfig{JID: j.ID, Name: j.Name, ExecutionConfig: ec, JobID: j.ID, JobName: j.Name, ExecutionConfigInfo: ec}, nil
}

func (s *Server) getCheckpointConfig(r *http.Request) (int, any, error) {
	id, err := idParam(r, "jobid")
	if err != nil {
		return 0, nil, err
	}
	c, err := s.cfg.Cluster.CheckpointConfig(r.Context(), id)
	if err != nil {
		return 0, nil, fmt.Errorf("checkpoint config of job %s: %w", id, err)
	}
	mode := "AT_LEAST_ONCE"
	if c.ExactlyOnce {
		mode = "EXACTLY_ONCE"
	}
	return http.StatusOK, checkpointConfig{
		Mode: mode, Interval: c.Interval.Milliseconds(), Timeout: c.Timeout.Milliseconds(), MinPause: c.MinPause.Milliseconds(),
		MaxConcurrent: c.MaxConcurrent, Externalization: externalization{Enabled: c.Externalized, DeleteOnCancellation: c.DeleteOnCancellation},
		StateBackend: c.StateBackend, CheckpointStorage: c.CheckpointStorage, Unaligned: c.Unaligned, TolerableFailed: c.TolerableFailed,
		AlignedTimeout: c.AlignedTimeout.Milliseconds(), CheckpointsAfterTasksFinish: c.CheckpointsAfterTasksFinish,
		ChangelogMaterialization: c.ChangelogMaterialization.Milliseconds(), ChangelogStorage: c.ChangelogStorage,
		SavepointDirectoryConfigured: c.SavepointDirectoryConfigured,
	}, nil
}

func checkpointType(c Checkpoint) string {
	switch {
	case c.Savepoint && c.Sync:
		return "SYNC_SAVEPOINT"
	case c.Savepoint:
		return "SAVEPOINT"
	}
	return "CHECKPOINT"
}

func checkpointOf(c Checkpoint) checkpointStatistics {
	out := checkpointStatistics{
		taskCheckpoint: taskCheckpoint{ID: c.ID, Status: c.Status, LatestAck: ms(c.LatestAck), CheckpointedSz: c.Size, StateSize: c.StateSize,
			EndToEnd: c.Duration.Milliseconds(), ProcessedData: c.ProcessedData, PersistedData: c.PersistedData,
			NumSubtasks: c.NumSubtasks, NumAcked: c.NumAcknowledged},
		IsSavepoint: c.Savepoint, Triggered: ms(c.Triggered), CheckpointType: checkpointType(c), Tasks: map[string]taskCheckpoint{},
	}
	for vid, t := range c.Tasks {
		out.Tasks[vid] = taskCheckpoint{ID: c.ID, Status: t.Status, LatestAck: ms(t.LatestAck), CheckpointedSz: t.Size, StateSize: t.StateSize,
			EndToEnd: t.Duration.Milliseconds(), NumSubtasks: t.NumSubtasks, NumAcked: t.NumAcknowledged}
	}
	switch c.Status {
	case CheckpointCompleted:
		out.ClassName = "completed"
		path, discarded := c.ExternalPath, c.Discarded
		out.ExternalPath, out.Discarded = &path, &discarded
	case CheckpointFailed:
		out.ClassName = "failed"
		ft, fm := ms(c.FailureTime), c.FailureMessage
		out.FailureTime, out.FailureMessage = &ft, &fm
	default:
		out.ClassName = "in_progress"
	}
	return out
}

// summarize is the min, max, average and percentiles of vs (zero for none).
func summarize(vs []int64) statsSummary {
	if len(vs) == 0 {
		return statsSummary{}
	}
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	var sum int64
	for _, v := range sorted {
		sum += v
	}
	pct := func(p float64) float64 {
		return float64(sorted[int(math.Ceil(p*float64(len(sorted))))-1])
	}
	return statsSummary{Min: sorted[0], Max: sorted[len(sorted)-1], Avg: sum / int64(len(sorted)),
		P50: pct(0.5), P90: pct(0.9), P95: pct(0.95), P99: pct(0.99), P999: pct(0.999)}
}

func (s *Server) getCheckpoints(r *http.Request) (int, any, error) {
	id, err := idParam(r, "jobid")
	if err != nil {
		return 0, nil, err
	}
	st, err := s.cfg.Cluster.Checkpoints(r.Context(), id)
	if err != nil {
		return 0, nil, fmt.Errorf("checkpoints of job %s: %w", id, err)
	}
	out := checkpointingStatistics{
		Counts:  checkpointCounts{Restored: st.Restored, Total: st.Total, InProgress: st.InProgress, Completed: st.Completed, Failed: st.Failed},
		History: []checkpointStatistics{},
	}
	var sizes, states, durations, processed, persisted []int64
	var maxSync, maxAsync, maxAlign int64
	for _, c := range st.History {
		out.History = append(out.History, checkpointOf(c))
		if c.Status != CheckpointCompleted {
			continue
		}
		sizes, states = append(sizes, c.Size), append(states, c.StateSize)
		durations = append(durations, c.Duration.Milliseconds())
		processed, persisted = append(processed, c.ProcessedData), append(persisted, c.PersistedData)
		maxSync = max(maxSync, c.SyncDuration.Milliseconds())
		maxAsync = max(maxAsync, c.AsyncDuration.Milliseconds())
		maxAlign = max(maxAlign, c.Alignment.Milliseconds())
	}
	out.Summary = checkpointSummary{
		CheckpointedSize: summarize(sizes), StateSize: summarize(states), EndToEndDuration: summarize(durations),
		AlignmentBuffered: summarize(nil), ProcessedData: summarize(processed), PersistedData: summarize(persisted),
		CheckpointDuration: map[string]any{"sync": maxSync, "async": maxAsync},
		Alignment:          map[string]any{"duration": maxAlign},
		StartDelay:         summarize(nil),
	}
	latest := func(c *Checkpoint) *checkpointStatistics {
		if c == nil {
			return nil
		}
		cs := checkpointOf(*c)
		return &cs
	}
	out.Latest = latestCheckpoints{Completed: latest(st.LatestCompleted), Savepoint: latest(st.LatestSavepoint), Failed: latest(st.LatestFailed)}
	if rc := st.LatestRestored; rc != nil {
		out.Latest.Restored = &restoredCheckpoint{ID: rc.ID, RestoreTime: ms(rc.Time), IsSavepoint: rc.Savepoint, ExternalPath: rc.Path}
	}
	return http.StatusOK, out, nil
}

func (s *Server) getCheckpoint(r *http.Request) (int, any, error) {
	id, err := idParam(r, "jobid")
	if err != nil {
		return 0, nil, err
	}
	raw := r.PathValue("checkpointid")
	cid, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || cid < 0 {
		return 0, nil, errorf(http.StatusBadRequest, "Bad request, could not parse parameter checkpointid: %q is not a checkpoint id.", raw)
	}
	st, err := s.cfg.Cluster.Checkpoints(r.Context(), id)
	if err != nil {
		return 0, nil, fmt.Errorf("checkpoints of job %s: %w", id, err)
	}
	for _, c := range st.History {
		if c.ID == cid {
			return http.StatusOK, checkpointOf(c), nil
		}
	}
	return 0, nil, errorf(http.StatusNotFound, "Could not find checkpointing statistics for checkpoint %d of job %s.", cid, id)
}

// vertex looks up the request's {jobid} and {vertexid}.
func (s *Server) vertex(r *http.Request) (Vertex, error) {
	j, err := s.job(r)
	if err != nil {
		return Vertex{}, err
	}
	vid, err := idParam(r, "vertexid")
	if err != nil {
		return Vertex{}, err
	}
	for _, v := range j.Vertices {
		if v.ID == vid {
			return v, nil
		}
	}
	return Vertex{}, errorf(http.StatusNotFound, "Job %s has no vertex %s.", j.ID, vid)
}

func (s *Server) getVertex(r *http.Request) (int, any, error) {
	v, err := s.vertex(r)
	if err != nil {
		return 0, nil, err
	}
	out := vertexDetails{ID: v.ID, Name: v.Name, Parallelism: v.Parallelism, MaxParallelism: v.MaxParallelism,
		Now: s.cfg.Now().UnixMilli(), Subtasks: []subtaskDetails{}}
	for _, st := range v.Subtasks {
		out.Subtasks = append(out.Subtasks, subtaskDetails{
			Subtask: st.Index, Status: st.State, Attempt: st.Attempt, Host: st.Host, StartTime: ms(st.Start), EndTime: ms(st.End),
			Duration: s.duration(st.Start, st.End), Metrics: ioOf(st), TaskManagerID: st.TaskManagerID,
		})
	}
	return http.StatusOK, out, nil
}

// backPressureLevel is Flink's: a ratio up to 0.10 is ok, up to 0.5 low,
// above high.
func backPressureLevel(ratio float64) string {
	switch {
	case ratio <= 0.10:
		return "ok"
	case ratio <= 0.5:
		return "low"
	}
	return "high"
}

func ratio(msPerSecond float64) float64 {
	return math.Min(1, math.Max(0, msPerSecond/1000))
}

// getBackPressure answers from the measured time per second each subtask
// spent back-pressured, idle and busy (Flink 1.13+; no stack sampling).
func (s *Server) getBackPressure(r *http.Request) (int, any, error) {
	v, err := s.vertex(r)
	if err != nil {
		return 0, nil, err
	}
	out := vertexBackPressure{Status: "ok", EndTimestamp: s.cfg.Now().UnixMilli(), Subtasks: []subtaskBackPressure{}}
	var worst float64
	for _, st := range v.Subtasks {
		bp := ratio(st.BackPressuredMsPerSecond)
		worst = max(worst, bp)
		out.Subtasks = append(out.Subtasks, subtaskBackPressure{Subtask: st.Index, AttemptNumber: st.Attempt,
			BackPressureLevel: backPressureLevel(bp), Ratio: bp, IdleRatio: ratio(st.IdleMsPerSecond), BusyRatio: ratio(st.BusyMsPerSecond)})
	}
	out.BackPressureLevel = backPressureLevel(worst)
	return http.StatusOK, out, nil
}

// getWatermarks answers with one metric per subtask, named as Flink names
// it: "<subtask>.currentInputWatermark".
func (s *Server) getWatermarks(r *http.Request) (int, any, error) {
	v, err := s.vertex(r)
	if err != nil {
		return 0, nil, err
	}
	out := []metric{}
	for _, st := range v.Subtasks {
		out = append(out, metric{ID: strconv.Itoa(st.Index) + ".currentInputWatermark", Value: strconv.FormatInt(st.Watermark, 10)})
	}
	return http.StatusOK, map[string][]metric{"metrics": out}, nil
}

// triggerIDOf checks a client-chosen trigger id (empty: none chosen).
func triggerIDOf(id string) error {
	if id != "" && !hex32(id) {
		return errorf(http.StatusBadRequest, "Request did not match expected format: triggerId %q is not a 32-character hexadecimal string.", id)
	}
	return nil
}

func validFormat(f string) (string, error) {
	switch f {
	case "", "CANONICAL":
		return "CANONICAL", nil
	case "NATIVE":
		return f, nil
	}
	return "", errorf(http.StatusBadRequest, "Request did not match expected format: formatType %q is not CANONICAL or NATIVE.", f)
}

// startSavepoint reads a savepoint or stop request into body, checks it
// and that the job exists (so an unknown job is a 404 now, not a failed
// operation later), and starts the savepoint that req makes of body.
func (s *Server) startSavepoint(r *http.Request, body any, req func() (trigger, format string, sr SavepointRequest)) (int, any, error) {
	id, err := idParam(r, "jobid")
	if err != nil {
		return 0, nil, err
	}
	if err := decodeBody(r, body); err != nil {
		return 0, nil, err
	}
	trigger, format, sr := req()
	if err := triggerIDOf(trigger); err != nil {
		return 0, nil, err
	}
	if sr.Format, err = validFormat(format); err != nil {
		return 0, nil, err
	}
	if _, err := s.cfg.Cluster.Job(r.Context(), id); err != nil {
		return 0, nil, fmt.Errorf("job %s: %w", id, err)
	}
	tid, err := s.ops.start(id, trigger, func(ctx context.Context) (string, error) {
		return s.cfg.Cluster.Savepoint(ctx, id, sr)
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, triggerResponse{RequestID: tid}, nil
}

func (s *Server) postSavepoint(r *http.Request) (int, any, error) {
	var b savepointTriggerBody
	return s.startSavepoint(r, &b, func() (string, string, SavepointRequest) {
		return b.TriggerID, b.FormatType, SavepointRequest{TargetDirectory: b.TargetDirectory, Cancel: b.CancelJob}
	})
}

func (s *Server) postStop(r *http.Request) (int, any, error) {
	var b stopBody
	return s.startSavepoint(r, &b, func() (string, string, SavepointRequest) {
		return b.TriggerID, b.FormatType, SavepointRequest{TargetDirectory: b.TargetDirectory, Stop: true, Drain: b.Drain}
	})
}

// causeOf is a failure as Flink's SerializedThrowable reaches JSON.
func causeOf(msg string) *failureCause {
	return &failureCause{Class: "org.apache.flink.util.SerializedThrowable", StackTrace: msg,
		Serialized: base64.StdEncoding.EncodeToString([]byte(msg))}
}

// operationResult is Flink's AsynchronousOperationResult of an operation.
func operationResult(op operation, withLocation bool) asyncResult {
	if !op.done {
		return asyncResult{Status: queueStatus{ID: "IN_PROGRESS"}}
	}
	info := &operationInfo{}
	if op.err != nil {
		info.FailureCause = causeOf(op.err.Error())
	} else if withLocation {
		info.Location = &op.location
	}
	return asyncResult{Status: queueStatus{ID: "COMPLETED"}, Operation: info}
}

// jobAndTrigger are the job id and trigger id of an operation's path.
func jobAndTrigger(r *http.Request) (job, trigger string, err error) {
	if job, err = idParam(r, "jobid"); err != nil {
		return "", "", err
	}
	if trigger, err = idParam(r, "triggerid"); err != nil {
		return "", "", err
	}
	return job, trigger, nil
}

func (s *Server) getSavepointStatus(r *http.Request) (int, any, error) {
	id, tid, err := jobAndTrigger(r)
	if err != nil {
		return 0, nil, err
	}
	op, ok := s.ops.get(id, tid)
	if !ok {
		return 0, nil, errorf(http.StatusNotFound, "There is no savepoint operation with trigger id %s for job %s (or its result has expired).", tid, id)
	}
	return http.StatusOK, operationResult(op, true), nil
}

// checkpointScope is the operations' scope of job id's checkpoints asked
// for by hand, apart from its savepoints.
func checkpointScope(id string) string { return id + "/checkpoints" }

// postCheckpoint is Flink 1.17's manual checkpoint trigger (not in the
// 1.16 spec this API follows otherwise): a checkpoint of the running job
// now, into its checkpoint storage; 202 with a trigger id, whose GET
// gives the checkpoint's id once it is complete.
func (s *Server) postCheckpoint(r *http.Request) (int, any, error) {
	id, err := idParam(r, "jobid")
	if err != nil {
		return 0, nil, err
	}
	var b struct {
		TriggerID      string `json:"triggerId"`
		CheckpointType string `json:"checkpointType"`
	}
	if err := decodeBody(r, &b); err != nil {
		return 0, nil, err
	}
	if err := triggerIDOf(b.TriggerID); err != nil {
		return 0, nil, err
	}
	switch b.CheckpointType {
	case "", "CONFIGURED", "FULL":
	default:
		return 0, nil, errorf(http.StatusBadRequest, "Request did not match expected format: checkpointType %q is not CONFIGURED or FULL (every checkpoint is a full one).", b.CheckpointType)
	}
	if _, err := s.cfg.Cluster.Job(r.Context(), id); err != nil {
		return 0, nil, fmt.Errorf("job %s: %w", id, err)
	}
	tid, err := s.ops.start(checkpointScope(id), b.TriggerID, func(ctx context.Context) (string, error) {
		n, err := s.cfg.Cluster.Checkpoint(ctx, id)
		return strconv.FormatInt(n, 10), err
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, triggerResponse{RequestID: tid}, nil
}

func (s *Server) getCheckpointStatus(r *http.Request) (int, any, error) {
	id, tid, err := jobAndTrigger(r)
	if err != nil {
		return 0, nil, err
	}
	op, ok := s.ops.get(checkpointScope(id), tid)
	if !ok {
		return 0, nil, errorf(http.StatusNotFound, "There is no checkpoint operation with trigger id %s for job %s (or its result has expired).", tid, id)
	}
	res := operationResult(op, false)
	if op.done && op.err == nil {
		n, err := strconv.ParseInt(op.location, 10, 64)
		if err != nil {
			return 0, nil, fmt.Errorf("checkpoint operation %s: %w", tid, err)
		}
		res.Operation.CheckpointID = &n
	}
	return http.StatusOK, res, nil
}

// disposalScope is the operations' scope of savepoint disposals (job ids
// are 32 hex digits, so it cannot clash with one).
const disposalScope = "savepoint-disposal"

func (s *Server) postDisposal(r *http.Request) (int, any, error) {
	var body disposalBody
	if err := decodeBody(r, &body); err != nil {
		return 0, nil, err
	}
	if body.SavepointPath == nil || strings.TrimSpace(*body.SavepointPath) == "" {
		return 0, nil, errorf(http.StatusBadRequest, "Request did not match expected format: savepoint-path is missing.")
	}
	p := *body.SavepointPath
	tid, err := s.ops.start(disposalScope, "", func(ctx context.Context) (string, error) {
		return "", s.cfg.Cluster.DisposeSavepoint(ctx, p)
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, triggerResponse{RequestID: tid}, nil
}

func (s *Server) getDisposalStatus(r *http.Request) (int, any, error) {
	tid, err := idParam(r, "triggerid")
	if err != nil {
		return 0, nil, err
	}
	op, ok := s.ops.get(disposalScope, tid)
	if !ok {
		return 0, nil, errorf(http.StatusNotFound, "There is no savepoint disposal with trigger id %s (or its result has expired).", tid)
	}
	return http.StatusOK, operationResult(op, false), nil
}

func (s *Server) taskManagerInfoOf(tm TaskManager) taskManagerInfo {
	hb := int64(0)
	if !tm.LastHeartbeat.IsZero() {
		hb = tm.LastHeartbeat.UnixMilli()
	}
	return taskManagerInfo{
		ID: tm.ID, Path: tm.Path, DataPort: tm.DataPort, JmxPort: -1, TimeSinceLastHeartbeat: hb,
		SlotsNumber: tm.Slots, FreeSlots: tm.FreeSlots,
		TotalResource:       resourceProf{CPUCores: float64(tm.CPUCores), ExtendedResources: map[string]float64{}},
		FreeResource:        resourceProf{CPUCores: float64(tm.CPUCores) * float64(tm.FreeSlots) / float64(max(1, tm.Slots)), ExtendedResources: map[string]float64{}},
		Hardware:            hardware{CPUCores: tm.CPUCores, PhysicalMemory: tm.PhysicalMemory, FreeMemory: tm.FreeMemory},
		MemoryConfiguration: map[string]any{},
	}
}

func (s *Server) getTaskManagers(r *http.Request) (int, any, error) {
	tms, err := s.cfg.Cluster.TaskManagers(r.Context())
	if err != nil {
		return 0, nil, fmt.Errorf("listing taskmanagers: %w", err)
	}
	out := taskManagersInfo{TaskManagers: []taskManagerInfo{}}
	for _, tm := range tms {
		out.TaskManagers = append(out.TaskManagers, s.taskManagerInfoOf(tm))
	}
	return http.StatusOK, out, nil
}

func (s *Server) getTaskManager(r *http.Request) (int, any, error) {
	id := r.PathValue("taskmanagerid")
	tms, err := s.cfg.Cluster.TaskManagers(r.Context())
	if err != nil {
		return 0, nil, fmt.Errorf("listing taskmanagers: %w", err)
	}
	for _, tm := range tms {
		if tm.ID != id {
			continue
		}
		d := taskManagerDetails{taskManagerInfo: s.taskManagerInfoOf(tm), AllocatedSlots: []slotInfo{},
			Metrics: taskManagerMetrics{HeapUsed: tm.HeapUsed, HeapCommitted: tm.HeapCommitted, HeapMax: tm.HeapMax,
				NettyShuffleMemorySegmentsTotal: tm.NetworkSegments, NettyShuffleMemorySegmentsAvailable: tm.NetworkSegments, GarbageCollectors: []any{}}}
		for _, job := range tm.AllocatedSlots {
			d.AllocatedSlots = append(d.AllocatedSlots, slotInfo{JobID: job, Resource: resourceProf{ExtendedResources: map[string]float64{}}})
		}
		return http.StatusOK, d, nil
	}
	return 0, nil, errorf(http.StatusNotFound, "TaskManager %s does not exist.", id)
}

func (s *Server) getJars(r *http.Request) (int, any, error) {
	bins, err := s.cfg.Cluster.Binaries(r.Context())
	if err != nil {
		return 0, nil, fmt.Errorf("listing job binaries: %w", err)
	}
	out := jarList{Address: "http://" + r.Host, Files: []jarFile{}}
	sort.SliceStable(bins, func(i, j int) bool { return bins[i].Uploaded.Before(bins[j].Uploaded) })
	for _, b := range bins {
		f := jarFile{ID: b.ID, Name: b.Name, Uploaded: b.Uploaded.UnixMilli(), Entry: []jarEntry{}}
		for _, e := range b.Entry {
			f.Entry = append(f.Entry, jarEntry{Name: e.Name, Description: e.Description})
		}
		out.Files = append(out.Files, f)
	}
	return http.StatusOK, out, nil
}

// readErrReader remembers the error its reader failed with, so the upload
// handler can tell "too large" or "cut short" from a failure of the store
// whatever the store wraps.
type readErrReader struct {
	r   io.Reader
	err error
}

func (e *readErrReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// multipartOf bounds an upload request by MaxUploadBytes (refusing at
// once one whose Content-Length is over it) and returns its parts.
func (s *Server) multipartOf(r *http.Request, what string) (*multipart.Reader, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, s.cfg.MaxUploadBytes)
	if r.ContentLength > s.cfg.MaxUploadBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, "Upload of %d bytes exceeds the limit of %d bytes.", r.ContentLength, s.cfg.MaxUploadBytes)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "Expected a multipart/form-data upload with %s: %v", what, err)
	}
	return mr, nil
}

// storeBinary streams a part to the Cluster's binary store without a
// temporary copy, under the part's file name (its last element only).
func (s *Server) storeBinary(r *http.Request, part *multipart.Part) (Binary, error) {
	name := path.Base(strings.ReplaceAll(part.FileName(), "\\", "/"))
	if name == "." || name == "/" || name == "" {
		name = "job"
	}
	rr := &readErrReader{r: part}
	b, err := s.cfg.Cluster.UploadBinary(r.Context(), name, rr)
	_ = part.Close()
	if rr.err != nil {
		return Binary{}, bodyError(rr.err)
	}
	if err != nil {
		return Binary{}, fmt.Errorf("storing job binary %q: %w", name, err)
	}
	return b, nil
}

// postJar stores a job binary sent as multipart/form-data in the field
// "jarfile" (as Flink's CLI and UI send jars).
func (s *Server) postJar(r *http.Request) (int, any, error) {
	mr, err := s.multipartOf(r, `the binary in the field "jarfile"`)
	if err != nil {
		return 0, nil, err
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return 0, nil, errorf(http.StatusBadRequest, "The upload has no field \"jarfile\".")
		}
		if err != nil {
			return 0, nil, bodyError(err)
		}
		if part.FormName() != "jarfile" {
			_ = part.Close()
			continue
		}
		b, err := s.storeBinary(r, part)
		if err != nil {
			return 0, nil, err
		}
		filename := b.Path
		if filename == "" {
			filename = b.ID
		}
		return http.StatusOK, jarUpload{Filename: filename, Status: "success"}, nil
	}
}

// binaryID is the request's {jarid}. Ids come from the Cluster's store,
// which never makes one that names a path (a separator, "." or "..") or
// holds a NUL; such an id in a request is refused before it reaches the
// store, as a defence for stores that keep binaries in files.
func binaryID(r *http.Request) (string, error) {
	id := r.PathValue("jarid")
	if id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") {
		return "", errorf(http.StatusNotFound, "Job binary %q does not exist.", id)
	}
	return id, nil
}

func (s *Server) deleteJar(r *http.Request) (int, any, error) {
	id, err := binaryID(r)
	if err != nil {
		return 0, nil, err
	}
	if err := s.cfg.Cluster.DeleteBinary(r.Context(), id); err != nil {
		return 0, nil, fmt.Errorf("deleting job binary %s: %w", id, err)
	}
	return http.StatusOK, struct{}{}, nil
}

// runOptions reads the options of a plan or run request: the JSON body
// first, then the query parameters (deprecated in Flink but still served)
// for what the body leaves out.
func runOptions(r *http.Request) (RunOptions, error) {
	var body jarRunBody
	if err := decodeBody(r, &body); err != nil {
		return RunOptions{}, err
	}
	q := r.URL.Query()
	opts := RunOptions{EntryClass: body.EntryClass, JobID: body.JobID, SavepointPath: body.SavepointPath, RestoreMode: body.RestoreMode}
	switch {
	case body.ProgramArgsList != nil:
		opts.Args = body.ProgramArgsList
	case body.ProgramArgs != "":
		opts.Args = strings.Fields(body.ProgramArgs)
	case q.Get("programArg") != "":
		opts.Args = strings.Split(q.Get("programArg"), ",")
	case q.Get("program-args") != "":
		opts.Args = strings.Fields(q.Get("program-args"))
	}
	if opts.EntryClass == "" {
		opts.EntryClass = q.Get("entry-class")
	}
	if opts.SavepointPath == "" {
		opts.SavepointPath = q.Get("savepointPath")
	}
	if body.Parallelism != nil {
		opts.Parallelism = *body.Parallelism
	} else if v := q.Get("parallelism"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return RunOptions{}, errorf(http.StatusBadRequest, "Bad request, could not parse parameter parallelism: %q is not an integer.", v)
		}
		opts.Parallelism = n
	}
	// Flink takes -1 (and absent) as "the default"; 0 the same here.
	if opts.Parallelism == -1 {
		opts.Parallelism = 0
	}
	if opts.Parallelism < 0 {
		return RunOptions{}, errorf(http.StatusBadRequest, "Bad request: parallelism %d must be positive.", opts.Parallelism)
	}
	if body.AllowNonRestoredState != nil {
		opts.AllowNonRestoredState = *body.AllowNonRestoredState
	} else if v := q.Get("allowNonRestoredState"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return RunOptions{}, errorf(http.StatusBadRequest, "Bad request, could not parse parameter allowNonRestoredState: %q is not a boolean.", v)
		}
		opts.AllowNonRestoredState = b
	}
	if err := checkRunOptions(opts); err != nil {
		return RunOptions{}, err
	}
	return opts, nil
}

// checkRunOptions checks the job id and restore mode a client chose.
func checkRunOptions(opts RunOptions) error {
	if opts.JobID != "" && !hex32(opts.JobID) {
		return errorf(http.StatusBadRequest, "Request did not match expected format: jobId %q is not a 32-character hexadecimal string.", opts.JobID)
	}
	switch opts.RestoreMode {
	case "", "CLAIM", "NO_CLAIM", "LEGACY":
		return nil
	}
	return errorf(http.StatusBadRequest, "Request did not match expected format: restoreMode %q is not CLAIM, NO_CLAIM or LEGACY.", opts.RestoreMode)
}

func (s *Server) jarPlan(r *http.Request) (int, any, error) {
	id, err := binaryID(r)
	if err != nil {
		return 0, nil, err
	}
	opts, err := runOptions(r)
	if err != nil {
		return 0, nil, err
	}
	p, err := s.cfg.Cluster.BinaryPlan(r.Context(), id, opts)
	if err != nil {
		return 0, nil, fmt.Errorf("plan of job binary %s: %w", id, err)
	}
	if p.Nodes == nil {
		p.Nodes = []PlanNode{}
	}
	return http.StatusOK, planInfo{Plan: p}, nil
}

func (s *Server) jarRun(r *http.Request) (int, any, error) {
	id, err := binaryID(r)
	if err != nil {
		return 0, nil, err
	}
	opts, err := runOptions(r)
	if err != nil {
		return 0, nil, err
	}
	jobID, err := s.cfg.Cluster.RunBinary(r.Context(), id, opts)
	if err != nil {
		return 0, nil, fmt.Errorf("running job binary %s: %w", id, err)
	}
	return http.StatusOK, jarRunResponse{JobID: jobID}, nil
}
