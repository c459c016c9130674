package rpc

import (
	"errors"

	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/statebackend"
)

// Failure is an error as plain data, like Flink's SerializedThrowable: the
// message and, for a task's failure, which operator of which subtask and
// attempt failed, and the stack of a panic.
//
// Cause is the original error. Only the in-process transport carries it
// (it is not encoded: `json:"-"`), so that in the embedded cluster
// errors.Is and errors.As still find the error a user function returned.
// Across a network only the plain data arrives, and Err rebuilds an error
// with the same message and, for a task's failure, the same
// *runtime.TaskError shape.
type Failure struct {
	Message     string
	Job         string // the job's name
	JobID       string
	Operator    string // empty unless a task's operator failed
	Task        string // the task's (vertex's) name
	Subtask     int
	Parallelism int
	Attempt     int
	Stack       string
	// NoRestart says restarting cannot help: the job must fail whatever
	// its restart strategy (a restored state whose type changed).
	NoRestart bool
	Cause     error `json:"-"`
}

// FailureOf turns err into a Failure (nil for nil).
func FailureOf(err error) *Failure {
	if err == nil {
		return nil
	}
	f := &Failure{Message: err.Error(), Cause: err, NoRestart: errors.Is(err, statebackend.ErrIncompatibleState)}
	// Only a TaskError itself is taken apart: were it wrapped, rebuilding
	// it from the fields would lose the wrapper's text.
	if te, ok := err.(*runtime.TaskError); ok {
		f.Job, f.JobID, f.Operator, f.Task = te.Job, te.Task.JobID, te.Operator, te.Task.VertexName
		f.Subtask, f.Parallelism, f.Attempt, f.Stack = te.Task.Subtask, te.Task.Parallelism, te.Task.Attempt, te.Stack
		if te.Err != nil {
			f.Message = te.Err.Error() // the TaskError's own text is rebuilt from the fields
		}
	}
	return f
}

// Err is the failure as an error: the original one when this process has
// it, otherwise one rebuilt from the plain data (nil for a nil Failure).
func (f *Failure) Err() error {
	switch {
	case f == nil:
		return nil
	case f.Cause != nil:
		return f.Cause
	case f.Operator == "":
		return errors.New(f.Message)
	}
	return &runtime.TaskError{
		Job:      f.Job,
		Operator: f.Operator,
		Task:     runtime.TaskInfo{JobName: f.Job, JobID: f.JobID, VertexName: f.Task, Subtask: f.Subtask, Parallelism: f.Parallelism, Attempt: f.Attempt},
		Err:      errors.New(f.Message),
		Stack:    f.Stack,
	}
}
