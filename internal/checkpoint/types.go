package checkpoint

import "time"

// The plain data that the coordinator, the metadata file and the
// completed-checkpoint store share. Everything here survives a JSON round
// trip: it travels from tasks to the JobMaster (acks) and into the metadata
// file.

// ID numbers checkpoints of one job; ids only increase, also across
// restarts and resumes (the first is 1).
type ID int64

// Kind says what a snapshot is for.
type Kind uint8

const (
	// KindCheckpoint is taken periodically and owned by the system:
	// subsumed ones are deleted.
	KindCheckpoint Kind = iota + 1
	// KindSavepoint is triggered by the user, in the canonical format, and
	// never deleted by the system.
	KindSavepoint
)

func (k Kind) String() string {
	switch k {
	case KindCheckpoint:
		return "CHECKPOINT"
	case KindSavepoint:
		return "SAVEPOINT"
	}
	return "UNKNOWN"
}

// StateHandle points at one piece of a subtask's state: a file in
// checkpoint storage (Path relative to the checkpoint storage root, so a
// checkpoint directory can be moved), or bytes small enough to live in the
// metadata itself (Inline).
type StateHandle struct {
	Path   string `json:"path,omitempty"`
	Size   int64  `json:"size"`
	Inline []byte `json:"inline,omitempty"`
	// Shared marks a file that several checkpoints may reference
	// (incremental state): it is reference-counted, not deleted with one
	// checkpoint.
	Shared bool `json:"shared,omitempty"`
}

// SubtaskState is what one subtask of one operator acknowledged.
type SubtaskState struct {
	Subtask int `json:"subtask"`
	// Keyed is the keyed-state stream (statebackend format), Operator the
	// operator-state lists, Channel the in-flight data of unaligned
	// checkpoints; any may be empty.
	Keyed    []StateHandle `json:"keyed,omitempty"`
	Operator []StateHandle `json:"operator,omitempty"`
	Channel  []StateHandle `json:"channel,omitempty"`
	// Watermark is the operator's current watermark at the snapshot.
	Watermark int64 `json:"watermark"`
	// Finished says the subtask had finished when the checkpoint was
	// taken (FLIP-147): it has no state, all it produced is in its
	// consumers' state, and a restore must not run it again.
	Finished bool `json:"finished,omitempty"`
}

// OperatorState is one operator's state in a checkpoint, matched to the
// operator by UID on restore.
type OperatorState struct {
	UID            string         `json:"uid"`
	Name           string         `json:"name"`
	Parallelism    int            `json:"parallelism"`
	MaxParallelism int            `json:"max_parallelism"`
	Subtasks       []SubtaskState `json:"subtasks"`
}

// Metadata describes one completed checkpoint or savepoint: the content of
// its metadata file.
type Metadata struct {
	JobID     string          `json:"job_id"`
	ID        ID              `json:"id"`
	Kind      Kind            `json:"kind"`
	Triggered time.Time       `json:"triggered"`
	Completed time.Time       `json:"completed"`
	Operators []OperatorState `json:"operators"`
}
