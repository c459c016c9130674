package scheduler

import (
	"errors"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The scheduler's behaviour is scripted in testdata (interaction_test.go).
// These tests check what a script cannot show: that errors keep their
// cause for errors.Is, and the names and predicates of the states.

func TestErrorsWrapTheirCause(t *testing.T) {
	jg := &JobGraph{JobName: "job", Vertices: []*JobVertex{{ID: 0, Name: "v", Parallelism: 1, SlotSharingGroup: "default"}}}
	slot := SlotID{TaskManager: "tm-1"}

	s := New(jg)
	s.Handle(EvStart{})
	cause := errors.New("job needs 2 slots but the cluster has 1")
	acts := s.Handle(EvSlotsRefused{Err: cause})
	require.Len(t, acts, 1)
	require.ErrorIs(t, acts[0].(ActJobDone).Err, cause)
	require.ErrorIs(t, s.Err(), cause)

	s = New(jg)
	s.Handle(EvStart{})
	s.Handle(EvSlotsGranted{Slots: []SlotID{slot}})
	cause = errors.New("operator Map failed")
	acts = s.Handle(EvTaskState{ID: ExecutionID{}, State: Failed, Err: cause})
	require.Equal(t, []Action{ActReleaseSlots{Slots: []SlotID{slot}}, ActJobDone{State: JobFailed, Err: cause}}, acts)
	require.ErrorIs(t, s.Err(), cause)
	require.ErrorIs(t, s.Executions()[0].Err, cause)
}

func TestStateNames(t *testing.T) {
	require.Equal(t, "CREATED", Created.String())
	require.Equal(t, "SCHEDULED", Scheduled.String())
	require.Equal(t, "DEPLOYING", Deploying.String())
	require.Equal(t, "INITIALIZING", Initializing.String())
	require.Equal(t, "RUNNING", Running.String())
	require.Equal(t, "FINISHED", Finished.String())
	require.Equal(t, "CANCELED", Canceled.String())
	require.Equal(t, "FAILED", Failed.String())
	require.Equal(t, "ExecState(42)", ExecState(42).String())
	require.Equal(t, "RUNNING", JobRunning.String())
	require.Equal(t, "FAILED", JobFailed.String())
	require.Equal(t, "JobState(42)", JobState(42).String())
	for _, st := range []ExecState{Finished, Canceled, Failed} {
		require.True(t, st.Terminal())
	}
	for _, st := range []ExecState{Created, Scheduled, Deploying, Initializing, Running, Canceling} {
		require.False(t, st.Terminal())
	}
	for _, st := range []JobState{JobFinished, JobFailed, JobCanceled} {
		require.True(t, st.Terminal())
	}
	for _, st := range []JobState{JobCreated, JobRunning, JobFailing, JobCanceling} {
		require.False(t, st.Terminal())
	}
	require.Equal(t, "v1/2#3", ExecutionID{1, 2, 3}.String())
	require.Equal(t, "tm-1/slot-0", SlotID{TaskManager: "tm-1"}.String())
}

// The scheduler stays a pure state machine: it imports neither the runtime
// nor the cluster, and the JobGraph only in jobgraph.go (so renaming that
// package is a one-line change).
func TestImports(t *testing.T) {
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			path := strings.Trim(imp.Path.Value, `"`)
			if !strings.HasPrefix(path, "github.com/strom-dev/strom/") {
				continue
			}
			require.Equal(t, "jobgraph.go", name, "%s imports %s", name, path)
			require.NotContains(t, path, "runtime")
			require.NotContains(t, path, "cluster")
		}
	}
}
