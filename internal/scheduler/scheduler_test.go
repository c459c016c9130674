package scheduler

import (
	"encoding/json"
	"errors"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The scheduler's behaviour is scripted in testdata (interaction_test.go).
// These tests check what a script cannot show: that errors keep their
// cause for errors.Is, and the names and predicates of the states.

func TestErrorsWrapTheirCause(t *testing.T) {
	jg := &JobGraph{JobName: "job", Vertices: []*JobVertex{{ID: 0, Name: "v", Parallelism: 1, SlotSharingGroup: "default"}}}
	slot := SlotID{TaskManager: "tm-1"}

	s, err := New(jg, RestartStrategy{})
	require.NoError(t, err)
	s.Handle(EvStart{})
	cause := errors.New("job needs 2 slots but the cluster has 1")
	acts := s.Handle(EvSlotsRefused{Err: cause})
	require.Len(t, acts, 1)
	require.ErrorIs(t, acts[0].(ActJobDone).Err, cause)
	require.ErrorIs(t, s.Err(), cause)

	s, err = New(jg, RestartStrategy{})
	require.NoError(t, err)
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
	require.Equal(t, "RESTARTING", JobRestarting.String())
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
	for _, st := range []JobState{JobCreated, JobRunning, JobFailing, JobCanceling, JobRestarting} {
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

// A job that fails for good after restarts keeps both the strategy's
// verdict and the task's cause for errors.Is.
func TestRestartVerdictWrapsCause(t *testing.T) {
	jg := &JobGraph{JobName: "job", Vertices: []*JobVertex{{ID: 0, Name: "v", Parallelism: 1, SlotSharingGroup: "default"}}}
	s, err := New(jg, FixedDelayRestart(1, 0))
	require.NoError(t, err)
	s.Handle(EvStart{})
	s.Handle(EvSlotsGranted{Slots: []SlotID{{TaskManager: "tm-1"}}})
	first := errors.New("first")
	acts := s.Handle(EvTaskState{ID: ExecutionID{}, State: Failed, Err: first})
	require.Equal(t, []Action{ActRestarting{Attempt: 1, Cause: first}, ActDeploy{ID: ExecutionID{Attempt: 1}, Slot: SlotID{TaskManager: "tm-1"}}}, acts,
		"no delay: the restart follows the failure at once")
	second := errors.New("second")
	s.Handle(EvTaskState{ID: ExecutionID{Attempt: 1}, State: Failed, Err: second})
	require.Equal(t, JobFailed, s.State())
	require.ErrorIs(t, s.Err(), second)
	require.EqualError(t, s.Err(), "restart strategy fixed-delay: all 1 restart attempts used: second")
	require.Equal(t, 1, s.Restarts())
}

func TestRestartStrategyValidation(t *testing.T) {
	exp := func(f func(*ExponentialDelay)) RestartStrategy {
		r := ExponentialDelayRestart()
		f(r.ExponentialDelay)
		return r
	}
	for _, tc := range []struct {
		r   RestartStrategy
		err string
	}{
		{RestartStrategy{}, ""},
		{NoRestart(), ""},
		{FixedDelayRestart(3, time.Second), ""},
		{ExponentialDelayRestart(), ""},
		{FailureRateRestart(2, time.Minute, time.Second), ""},
		{RestartStrategy{Kind: "sometimes"}, `unknown restart strategy "sometimes" (want none, fixed-delay, exponential-delay or failure-rate)`},
		{RestartStrategy{Kind: RestartNone, FixedDelay: &FixedDelay{Attempts: 1}}, "restart strategy none takes no parameters"},
		{RestartStrategy{Kind: RestartFixedDelay}, "restart strategy fixed-delay needs its parameters (fixed_delay) and no others"},
		{RestartStrategy{Kind: RestartFixedDelay, FixedDelay: &FixedDelay{Attempts: 1}, FailureRate: &FailureRate{}}, "restart strategy fixed-delay needs its parameters (fixed_delay) and no others"},
		{FixedDelayRestart(0, time.Second), "restart strategy fixed-delay: attempts must be at least 1, got 0"},
		{FixedDelayRestart(1, -time.Second), "restart strategy fixed-delay: delay must not be negative, got -1s"},
		{RestartStrategy{Kind: RestartExponentialDelay}, "restart strategy exponential-delay needs its parameters (exponential_delay) and no others"},
		{exp(func(p *ExponentialDelay) { p.InitialBackoff = 0 }), "restart strategy exponential-delay: initial backoff must be positive, got 0s"},
		{exp(func(p *ExponentialDelay) { p.MaxBackoff = time.Millisecond }), "restart strategy exponential-delay: max backoff 1ms is below the initial backoff 1s"},
		{exp(func(p *ExponentialDelay) { p.Multiplier = 0.5 }), "restart strategy exponential-delay: multiplier must be at least 1, got 0.5"},
		{exp(func(p *ExponentialDelay) { p.ResetThreshold = 0 }), "restart strategy exponential-delay: reset threshold must be positive, got 0s"},
		{exp(func(p *ExponentialDelay) { p.JitterFactor = 1.5 }), "restart strategy exponential-delay: jitter factor must be within [0, 1], got 1.5"},
		{exp(func(p *ExponentialDelay) { p.Attempts = -1 }), "restart strategy exponential-delay: attempts must not be negative, got -1"},
		{RestartStrategy{Kind: RestartFailureRate}, "restart strategy failure-rate needs its parameters (failure_rate) and no others"},
		{FailureRateRestart(0, time.Minute, 0), "restart strategy failure-rate: max failures must be at least 1, got 0"},
		{FailureRateRestart(1, 0, 0), "restart strategy failure-rate: interval must be positive, got 0s"},
		{FailureRateRestart(1, time.Minute, -1), "restart strategy failure-rate: delay must not be negative, got -1ns"},
	} {
		err := tc.r.Validate()
		if tc.err == "" {
			require.NoError(t, err, "%v", tc.r)
			continue
		}
		require.EqualError(t, err, tc.err)
		_, err = New(&JobGraph{}, tc.r)
		require.EqualError(t, err, tc.err, "New validates")
	}
}

// The strategy is plain data: it survives encoding/json, so it can ride in
// a job's settings to another process.
func TestRestartStrategyRoundTripsThroughJSON(t *testing.T) {
	exp := ExponentialDelayRestart()
	exp.ExponentialDelay.Seed = 42
	exp.ExponentialDelay.Attempts = 7
	for _, r := range []RestartStrategy{{}, NoRestart(), FixedDelayRestart(3, time.Second), exp, FailureRateRestart(2, time.Minute, time.Second)} {
		data, err := json.Marshal(r)
		require.NoError(t, err)
		var back RestartStrategy
		require.NoError(t, json.Unmarshal(data, &back))
		require.Equal(t, r, back, "%s", data)
	}
	data, err := json.Marshal(FixedDelayRestart(3, time.Second))
	require.NoError(t, err)
	require.JSONEq(t, `{"kind":"fixed-delay","fixed_delay":{"attempts":3,"delay":1000000000}}`, string(data))
}

func TestDefaultRestartStrategy(t *testing.T) {
	require.Equal(t, NoRestart(), DefaultRestartStrategy(false), "without checkpoints a restart would lose the state")
	require.Equal(t, ExponentialDelayRestart(), DefaultRestartStrategy(true))
	require.Equal(t, "none", RestartStrategy{}.String())
	require.Equal(t, "fixed-delay(attempts=3, delay=1s)", FixedDelayRestart(3, time.Second).String())
	require.Equal(t, "exponential-delay(initial=1s, max=1m0s, multiplier=1.5, reset=1h0m0s, jitter=0.1, attempts=0)", ExponentialDelayRestart().String())
	require.Equal(t, "failure-rate(max-failures=2, interval=1m0s, delay=1s)", FailureRateRestart(2, time.Minute, time.Second).String())
	require.Equal(t, `invalid restart strategy "fixed-delay"`, RestartStrategy{Kind: RestartFixedDelay}.String())
}
