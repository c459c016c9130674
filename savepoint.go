package strom

import (
	"context"
	"errors"
	"fmt"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/jobcode"
)

// Savepoints are consistent snapshots of a job that the user triggers and
// owns (Flink's savepoints): to stop and resume a job, to upgrade its code,
// to move it, or to rescale it. A savepoint is one self-contained
// directory, savepoint-<job id prefix>-<random>, below the directory it
// was asked for: its state files and, written last, its _metadata. State
// file paths inside it are relative, so the directory may be copied or
// moved. Strom never deletes a savepoint; DisposeSavepoint does.
//
// Resuming (Config.FromSavepoint) matches state to operators by UID: set
// UIDs on stateful operators so that a changed job still finds its state.
// Keyed state is redistributed to any parallelism up to the job's
// MaxParallelism, which must be the savepoint's.

// ErrNoSavepointDir is wrapped by TriggerSavepoint's error when it is given
// no directory and Config.SavepointDir is not set.
var ErrNoSavepointDir = errors.New("no savepoint directory: pass one or set Config.SavepointDir")

// TriggerSavepoint takes a savepoint of the running job into a new
// directory below targetDir (a blob URL — file:///dir, s3://bucket/prefix,
// mem://name — or an OS path; "" means Config.SavepointDir) and returns
// the savepoint's path, to give to Config.FromSavepoint or
// DisposeSavepoint. It waits until the savepoint is complete or has
// failed; either way the job keeps running. It works with checkpointing
// off too. Like Flink's intermediate savepoints it commits nothing: an
// exactly-once sink commits what it covers with the next checkpoint.
func (c *JobClient) TriggerSavepoint(ctx context.Context, targetDir string) (string, error) {
	return c.savepoint(ctx, "savepoint", targetDir, false, false)
}

// StopWithSavepoint stops the job with a savepoint (Flink's "stop"): the
// sources stop reading, a savepoint is taken into a new directory below
// targetDir (as for TriggerSavepoint), exactly-once sinks commit what it
// covers, and the job ends FINISHED; it returns the savepoint's path once
// the savepoint is complete (Wait for the job's end). Without drain
// nothing more happens after the savepoint — no end-of-input hooks, no
// windows fired at the end — so a job resumed from it duplicates nothing.
// With drain the sources end their input first (the maximum watermark
// fires every window, end-of-input hooks run) and the savepoint is the
// job's final snapshot. If the savepoint fails, the job keeps running and
// the error says why.
func (c *JobClient) StopWithSavepoint(ctx context.Context, targetDir string, drain bool) (string, error) {
	return c.savepoint(ctx, "stop-with-savepoint", targetDir, true, drain)
}

// savepoint asks the job's JobMaster for a savepoint into targetDir
// (Config.SavepointDir if empty) and waits for its path.
func (c *JobClient) savepoint(ctx context.Context, what, targetDir string, stop, drain bool) (string, error) {
	if targetDir == "" {
		targetDir = c.savepointDir
	}
	if c.remote != nil {
		// "" lets the cluster use its default savepoint directory.
		return c.remote.savepoint(ctx, targetDir, stop, drain)
	}
	if targetDir == "" {
		return "", fmt.Errorf("strom: %s of job %q: %w", what, c.name, ErrNoSavepointDir)
	}
	path, err := c.h.TriggerSavepoint(ctx, targetDir, stop, drain)
	if err != nil {
		return "", fmt.Errorf("strom: %w", err)
	}
	return path, nil
}

// DisposeSavepoint deletes the savepoint at path (its directory as
// TriggerSavepoint returned it or as an OS path, or its _metadata file).
// It refuses a path that holds no valid savepoint metadata, so a wrong
// path deletes nothing.
func DisposeSavepoint(ctx context.Context, path string) error {
	if err := checkpoint.DisposeSavepoint(ctx, path); err != nil {
		return fmt.Errorf("strom: %w", err)
	}
	return nil
}

// resume is the savepoint the job starts from (nil: none).
func (c Config) resume() *jobcode.Resume {
	if c.FromSavepoint == "" {
		return nil
	}
	return &jobcode.Resume{Path: c.FromSavepoint, AllowNonRestoredState: c.AllowNonRestoredState}
}
