package strom

import (
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/runtime"
)

// Test hooks for package strom_test.

// ReadBatch is how many records a built-in reader emits per Read.
const ReadBatch = readBatch

// SetStateSeam makes env's next job start from restore and hands onTask
// every task before it runs, so tests can snapshot tasks through the state
// seam directly, with snapshots and restores of their own choosing (see
// stateSeam; checkpoint_test.go tests the real checkpoints).
func SetStateSeam(env *Environment, restore runtime.JobRestore, onTask func(*runtime.Task)) {
	env.seam = stateSeam{restore: restore, onTask: onTask}
}

// SliceSource is the source FromSlice reads (with its split codec).
func SliceSource[T any](data []T) Source[T] { return sliceSource[T]{data: data} }

// DropMessages makes env's next job lose the messages between its
// cluster's roles that drop accepts (a lost checkpoint notification).
func DropMessages(env *Environment, drop func(to string, m rpc.Message) bool) {
	env.seam.dropMessage = drop
}
