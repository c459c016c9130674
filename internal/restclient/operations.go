package restclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// asyncResult is Flink's AsynchronousOperationResult: IN_PROGRESS, or
// COMPLETED with a location (savepoints), a checkpoint id (checkpoints) or
// a failure.
type asyncResult struct {
	Status struct {
		ID string `json:"id"`
	} `json:"status"`
	Operation *struct {
		Location     *string       `json:"location"`
		CheckpointID *int64        `json:"checkpointId"`
		FailureCause *FailureCause `json:"failure-cause"`
	} `json:"operation"`
}

type triggerResponse struct {
	RequestID string `json:"request-id"`
}

// poll asks path (the status of an operation started by a POST) every
// PollInterval until it is COMPLETED, and returns its result, or the
// operation's failure as an error.
func (c *Client) poll(ctx context.Context, what, path string, notFound func(*APIError) error) (*asyncResult, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.OperationTimeout,
		fmt.Errorf("%s did not complete within %v (the cluster may still complete it)", what, c.OperationTimeout))
	defer cancel()
	t := time.NewTicker(c.PollInterval)
	defer t.Stop()
	for {
		var r asyncResult
		if err := c.do(ctx, request{method: "GET", path: path, notFound: notFound}, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if r.Status.ID == "COMPLETED" {
			if r.Operation != nil && r.Operation.FailureCause != nil {
				return nil, fmt.Errorf("%s failed: %s", what, r.Operation.FailureCause.StackTrace)
			}
			return &r, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w", what, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// savepointOp starts a savepoint-like operation of job id at path with
// body and waits for its location.
func (c *Client) savepointOp(ctx context.Context, what, id, path string, body any) (string, error) {
	b, err := jsonBody(body)
	if err != nil {
		return "", err
	}
	var tr triggerResponse
	if err := c.do(ctx, request{method: "POST", path: path, body: b, contentType: "application/json", notFound: unknownJob(id)}, &tr); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	r, err := c.poll(ctx, what, jobPath(id, "/savepoints/", url.PathEscape(tr.RequestID)), func(e *APIError) error {
		return fmt.Errorf("the cluster no longer knows trigger %s (%w)", tr.RequestID, e)
	})
	if err != nil {
		return "", err
	}
	if r.Operation == nil || r.Operation.Location == nil {
		return "", fmt.Errorf("%s: completed without a savepoint location", what)
	}
	return *r.Operation.Location, nil
}

// TriggerSavepoint takes a savepoint of job id into a new directory below
// dir ("" means the cluster's default savepoint directory) and returns the
// savepoint's path once it is complete. The job keeps running.
func (c *Client) TriggerSavepoint(ctx context.Context, id, dir string) (string, error) {
	body := struct {
		TargetDirectory string `json:"target-directory,omitempty"`
		CancelJob       bool   `json:"cancel-job"`
	}{TargetDirectory: dir}
	return c.savepointOp(ctx, "savepoint of job "+id, id, jobPath(id, "/savepoints"), body)
}

// StopWithSavepoint stops job id with a savepoint into a new directory
// below dir ("" means the cluster's default) and returns the savepoint's
// path. With drain the sources end their input first (every window fires).
func (c *Client) StopWithSavepoint(ctx context.Context, id, dir string, drain bool) (string, error) {
	body := struct {
		TargetDirectory string `json:"targetDirectory,omitempty"`
		Drain           bool   `json:"drain"`
	}{TargetDirectory: dir, Drain: drain}
	return c.savepointOp(ctx, "stop with savepoint of job "+id, id, jobPath(id, "/stop"), body)
}

// DisposeSavepoint deletes the savepoint at path (as TriggerSavepoint
// returned it). A path that holds no savepoint is an error and deletes
// nothing.
func (c *Client) DisposeSavepoint(ctx context.Context, path string) error {
	what := fmt.Sprintf("disposing savepoint %q", path)
	b, err := jsonBody(map[string]string{"savepoint-path": path})
	if err != nil {
		return err
	}
	var tr triggerResponse
	if err := c.do(ctx, request{method: "POST", path: "/savepoint-disposal", body: b, contentType: "application/json"}, &tr); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	_, err = c.poll(ctx, what, "/savepoint-disposal/"+url.PathEscape(tr.RequestID), nil)
	return err
}

// Checkpoint is one checkpoint in a job's statistics.
type Checkpoint struct {
	ID           int64  `json:"id"`
	Status       string `json:"status"`
	IsSavepoint  bool   `json:"is_savepoint"`
	Triggered    int64  `json:"trigger_timestamp"`
	StateSize    int64  `json:"state_size"`
	EndToEnd     int64  `json:"end_to_end_duration"`
	ExternalPath string `json:"external_path"`
}

// CheckpointStats is /jobs/:jobid/checkpoints (the parts a client reads).
type CheckpointStats struct {
	Counts struct {
		Restored   int `json:"restored"`
		Total      int `json:"total"`
		InProgress int `json:"in_progress"`
		Completed  int `json:"completed"`
		Failed     int `json:"failed"`
	} `json:"counts"`
	Latest struct {
		Completed *Checkpoint `json:"completed"`
		Savepoint *Checkpoint `json:"savepoint"`
		Failed    *Checkpoint `json:"failed"`
	} `json:"latest"`
	History []Checkpoint `json:"history"`
}

// Checkpoints returns job id's checkpoint statistics.
func (c *Client) Checkpoints(ctx context.Context, id string) (*CheckpointStats, error) {
	var out CheckpointStats
	if err := c.do(ctx, request{method: "GET", path: jobPath(id, "/checkpoints"), notFound: unknownJob(id)}, &out); err != nil {
		return nil, fmt.Errorf("checkpoints of job %s: %w", id, err)
	}
	return &out, nil
}

// TriggerCheckpoint asks for a checkpoint of job id now and returns its id
// once it is complete: POST /jobs/:jobid/checkpoints, then its trigger id
// (Flink 1.17's manual checkpoint; Flink 1.16 has none). A cluster without
// that endpoint answers 404 or 405: the error wraps ErrNotSupported. The
// job is looked up first, so an unknown id is ErrUnknownJob, not that.
func (c *Client) TriggerCheckpoint(ctx context.Context, id string) (int64, error) {
	what := "checkpoint of job " + id
	if _, err := c.Job(ctx, id); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	b, err := jsonBody(map[string]any{})
	if err != nil {
		return 0, err
	}
	var tr triggerResponse
	err = c.do(ctx, request{method: "POST", path: jobPath(id, "/checkpoints"), body: b, contentType: "application/json"}, &tr)
	var apiErr *APIError
	if errors.As(err, &apiErr) && (apiErr.Status == http.StatusNotFound || apiErr.Status == http.StatusMethodNotAllowed) {
		return 0, fmt.Errorf("%s: triggering a checkpoint by hand is %w (%w); checkpoints are taken at the job's interval, or take a savepoint", what, ErrNotSupported, apiErr)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	r, err := c.poll(ctx, what, jobPath(id, "/checkpoints/", url.PathEscape(tr.RequestID)), nil)
	if err != nil {
		return 0, err
	}
	if r.Operation == nil || r.Operation.CheckpointID == nil {
		return 0, fmt.Errorf("%s: completed without a checkpoint id", what)
	}
	return *r.Operation.CheckpointID, nil
}
