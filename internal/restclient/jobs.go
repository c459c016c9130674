package restclient

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// JobOverview is one job of /jobs/overview (Flink's wire fields).
type JobOverview struct {
	ID               string         `json:"jid"`
	Name             string         `json:"name"`
	State            string         `json:"state"`
	StartTime        int64          `json:"start-time"`
	EndTime          int64          `json:"end-time"`
	Duration         int64          `json:"duration"`
	LastModification int64          `json:"last-modification"`
	Tasks            map[string]int `json:"tasks"`
}

// IOMetrics are a vertex's record and byte counts.
type IOMetrics struct {
	ReadBytes    int64 `json:"read-bytes"`
	WriteBytes   int64 `json:"write-bytes"`
	ReadRecords  int64 `json:"read-records"`
	WriteRecords int64 `json:"write-records"`
}

// VertexSummary is one job vertex in /jobs/:jobid.
type VertexSummary struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Parallelism int       `json:"parallelism"`
	Status      string    `json:"status"`
	Metrics     IOMetrics `json:"metrics"`
}

// JobDetails is /jobs/:jobid.
type JobDetails struct {
	ID           string          `json:"jid"`
	Name         string          `json:"name"`
	State        string          `json:"state"`
	IsStoppable  bool            `json:"isStoppable"`
	StartTime    int64           `json:"start-time"`
	EndTime      int64           `json:"end-time"`
	Duration     int64           `json:"duration"`
	StatusCounts map[string]int  `json:"status-counts"`
	Vertices     []VertexSummary `json:"vertices"`
}

// FailureCause is Flink's SerializedThrowable as JSON: StackTrace holds
// the failure's message in Strom.
type FailureCause struct {
	Class      string `json:"class"`
	StackTrace string `json:"stack-trace"`
}

// JobResult is a job's end, from /jobs/:jobid/execution-result.
type JobResult struct {
	ID string `json:"id"`
	// ApplicationStatus is SUCCEEDED, FAILED or CANCELED.
	ApplicationStatus string `json:"application-status"`
	// NetRuntime is in milliseconds.
	NetRuntime   int64         `json:"net-runtime"`
	FailureCause *FailureCause `json:"failure-cause,omitempty"`
	// Accumulators are the job's counters by name; a Strom cluster
	// reports each operator's records as numRecordsIn.NAME and
	// numRecordsOut.NAME, in decimal.
	Accumulators map[string]string `json:"accumulator-results,omitempty"`
}

// Runtime is the job's net runtime.
func (r *JobResult) Runtime() time.Duration { return time.Duration(r.NetRuntime) * time.Millisecond }

// Failure is the message of a failed job's cause ("" if none).
func (r *JobResult) Failure() string {
	if r.FailureCause == nil {
		return ""
	}
	return r.FailureCause.StackTrace
}

// Jobs lists the cluster's jobs, running and ended.
func (c *Client) Jobs(ctx context.Context) ([]JobOverview, error) {
	var out struct {
		Jobs []JobOverview `json:"jobs"`
	}
	if err := c.do(ctx, request{method: "GET", path: "/jobs/overview"}, &out); err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	return out.Jobs, nil
}

// Job returns the details of job id.
func (c *Client) Job(ctx context.Context, id string) (*JobDetails, error) {
	var out JobDetails
	if err := c.do(ctx, request{method: "GET", path: jobPath(id), notFound: unknownJob(id)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CancelJob asks the cluster to cancel job id and returns once the request
// is accepted (the job ends soon after; WaitJob waits for it). A job that
// has already ended is a 409 APIError.
func (c *Client) CancelJob(ctx context.Context, id string) error {
	if err := c.do(ctx, request{method: "PATCH", path: jobPath(id, "?mode=cancel"), notFound: unknownJob(id)}, nil); err != nil {
		return fmt.Errorf("cancelling job %s: %w", id, err)
	}
	return nil
}

// JobResult returns job id's result, or nil while it runs.
func (c *Client) JobResult(ctx context.Context, id string) (*JobResult, error) {
	var out struct {
		Status struct {
			ID string `json:"id"`
		} `json:"status"`
		Result *JobResult `json:"job-execution-result"`
	}
	if err := c.do(ctx, request{method: "GET", path: jobPath(id, "/execution-result"), notFound: unknownJob(id)}, &out); err != nil {
		return nil, err
	}
	if out.Status.ID != "COMPLETED" {
		return nil, nil
	}
	if out.Result == nil {
		return nil, fmt.Errorf("result of job %s: COMPLETED without a job-execution-result", id)
	}
	return out.Result, nil
}

// WaitJob polls job id's result until the job has ended (whichever way:
// look at ApplicationStatus) or ctx ends. A cluster that stops answering
// is waited for up to ReconnectTimeout (a JobManager restarting, or a
// standby taking over), as the job runs on without its client.
func (c *Client) WaitJob(ctx context.Context, id string) (*JobResult, error) {
	t := time.NewTicker(c.PollInterval)
	defer t.Stop()
	var lost time.Time // when the cluster stopped answering; zero while it answers
	for {
		r, err := c.JobResult(ctx, id)
		var ue *UnreachableError
		switch {
		case errors.As(err, &ue) && (lost.IsZero() || time.Since(lost) < c.ReconnectTimeout):
			if lost.IsZero() {
				lost = time.Now()
			}
		case err != nil:
			return nil, fmt.Errorf("waiting for job %s: %w", id, err)
		case r != nil:
			return r, nil
		default:
			lost = time.Time{}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for job %s: %w", id, context.Cause(ctx))
		case <-t.C:
		}
	}
}
