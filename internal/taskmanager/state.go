package taskmanager

import (
	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/runtime"
)

// restoreTask gives task the restores of its chain's operators from the
// job's restore.
func restoreTask(job *jobcode.Job, v *jobgraph.JobVertex, subtask int, task *runtime.Task, restore runtime.JobRestore) error {
	if len(restore) == 0 {
		return nil
	}
	uids := make([]string, len(task.Chain))
	for i, c := range task.Chain {
		uids[i] = c.UID
	}
	r, err := restore.ForSubtask(uids, subtask, v.Parallelism)
	if err != nil {
		return &runtime.TaskError{Job: job.Name, Operator: v.Name, Task: task.Info, Err: err}
	}
	task.Restore = r
	return nil
}
