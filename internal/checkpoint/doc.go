// Package checkpoint is Strom's fault tolerance at the JobMaster: the
// checkpoint coordinator, the plain data a checkpoint consists of, its
// metadata file and the store of completed checkpoints.
//
// # The coordinator
//
// Coordinator is the JobMaster's checkpoint coordinator (Flink's
// CheckpointCoordinator) as a pure state machine, in the manner of etcd's
// raft core and of internal/scheduler: events go in through
// Coordinator.Handle — a tick of the clock, a user's request, the tasks
// running or stopped, a task's ack, decline, end of input, finish or
// failure, the answer to a metadata write, a restore — and actions come out:
// trigger a checkpoint at some tasks, write its metadata, tell the tasks it
// completed or was aborted, discard the files of a late ack, fail the job.
// It starts no goroutines, does no I/O and reads no clock (time comes in
// with EvTick), so every interleaving of acks, failures and timeouts is
// scripted in testdata/*.txt. The shell in internal/jobmaster turns
// messages into events and carries out the actions.
//
// A checkpoint's life (asynchronous barrier snapshots):
//
//  1. Triggered (ActTrigger) at the running tasks none of whose producers
//     runs: the sources while they run. They snapshot their state and send
//     barrier n downstream; every other task snapshots when barrier n has
//     come on all its inputs (aligned: exactly once) or on each
//     (at least once).
//  2. Every running task acks with handles to its operators' state
//     (EvAck), or declines (EvDecline), which aborts the checkpoint.
//     Checkpoints not fully acked within Config.Timeout are aborted too.
//  3. With all acks in, the shell writes the metadata (ActWriteMetadata)
//     and answers EvMetadataWritten. Only then is the checkpoint complete,
//     and only then are the tasks told (ActNotifyComplete): that is when
//     two-phase-commit sinks commit, so nothing is committed that a
//     restore could not reproduce.
//
// Ids only grow, across restarts (the same coordinator) and across
// JobMaster failovers and resumes (EvRestore). A message of another
// attempt than the tasks' current one is ignored: after a restart it can
// only be stale. Consecutive failed checkpoints beyond
// Config.TolerableFailures fail the job.
//
// Finished tasks (Flink's FLIP-147): a finished task is not waited for; a
// checkpoint records its subtask as finished (SubtaskState.Finished), and
// is triggered at the first running tasks downstream once the sources have
// finished. A task whose input has ended (EvEndOfInput) waits, still
// running, for the completion of a checkpoint triggered after that point
// before it finishes, so its last output is committed; when every running
// task waits so, the coordinator triggers that final checkpoint at once.
//
// # Savepoints
//
// A savepoint is a checkpoint the user asks for (EvTrigger with
// KindSavepoint) and owns: it is triggered as soon as every task runs,
// whatever the interval, MaxConcurrent and MinPause say, always aligned;
// its ids come from the same sequence as checkpoints'; its failure (decline,
// timeout, task failure, metadata not written) aborts it with an ActAbort
// naming the request and never counts against Config.TolerableFailures or
// fails the job; it is never subsumed. It is done when its metadata is
// written: intermediate savepoints are not notified to the tasks (as in
// Flink since 1.15, they commit no side effects; a two-phase-commit sink
// commits what one covered with the next checkpoint), and a savepoint is
// never the final checkpoint. EvTrigger's Stop and Drain are reserved for
// stop-with-savepoint and only passed through.
//
// On storage (savepoint.go) a savepoint is one self-contained directory
// below the user's target, savepoint-<first 6 characters of the job
// id>-<12 random hex digits>, holding the state files
// (<uid>/<subtask>-keyed, <uid>/<subtask>-operator) and, written last,
// _metadata (the metadata file below, Kind savepoint). StateHandle.Path in
// a savepoint's metadata is RELATIVE TO THE SAVEPOINT DIRECTORY, not to
// any checkpoint storage root, so the directory can be moved or copied
// whole; a restore reads it through rpc.RestoreHandles.Storage, the
// directory's URL. Savepoints are not kept in the CompletedStore and never
// deleted by the system: DisposeSavepoint deletes one, after checking that
// its _metadata is a valid savepoint's.
//
// # Metadata and storage
//
// The plain data a checkpoint consists of (types.go: handles to state
// files, each operator's state by UID, the metadata) is shared with the
// metadata file, which the shell writes on ActWriteMetadata, and with the
// store of completed checkpoints, which keeps the retained ones and finds
// the one to restore from (metadata.go, store.go).
package checkpoint
