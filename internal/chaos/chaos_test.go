package chaos

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func task(vertex string, subtask, attempt int) *runtime.Task {
	return runtime.NewTask(runtime.TaskInfo{VertexName: vertex, Subtask: subtask, Parallelism: 2, Attempt: attempt},
		network.NewNotifier(), wallClock{}, slog.New(slog.DiscardHandler))
}

func TestTaskHookTravelsInTheContext(t *testing.T) {
	require.Nil(t, TaskHook(context.Background()))
	var got *runtime.Task
	ctx := WithTaskHook(context.Background(), func(t *runtime.Task) { got = t })
	tk := task("v", 0, 0)
	TaskHook(ctx)(tk)
	require.Same(t, tk, got)
}

// Only the newest attempt's tasks are candidates, and the seed alone picks
// the task: the order the tasks were built in does not matter.
func TestFailOneChoosesFromTheNewestAttemptBySeed(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	in := NewInjector(42, quiet)
	_, ok := in.FailOne()
	require.False(t, ok, "no task deployed yet")
	require.Zero(t, in.Injected())

	choices := func(order []int) []runtime.TaskInfo {
		in := NewInjector(42, quiet)
		in.Hook(task("old", 0, 0))
		all := []*runtime.Task{task("a", 0, 1), task("a", 1, 1), task("b", 0, 1), task("b", 1, 1)}
		for _, i := range order {
			in.Hook(all[i])
		}
		in.Hook(task("stale", 0, 0)) // an older attempt's task built late
		var got []runtime.TaskInfo
		for range 8 {
			info, ok := in.FailOne()
			require.True(t, ok)
			require.Equal(t, 1, info.Attempt, "only the newest attempt's tasks")
			got = append(got, info)
		}
		require.EqualValues(t, 8, in.Injected())
		return got
	}
	first := choices([]int{0, 1, 2, 3})
	require.Equal(t, first, choices([]int{3, 1, 0, 2}), "same seed, same choices")
	distinct := map[runtime.TaskInfo]bool{}
	for _, c := range first {
		distinct[c] = true
	}
	require.Greater(t, len(distinct), 1, "the choice is random, not always the same task")
}

// The periodic injector stops with its stop function and leaves no
// goroutine behind (TestMain's goleak).
func TestStartStops(t *testing.T) {
	in := NewInjector(1, slog.New(slog.DiscardHandler))
	in.Hook(task("a", 0, 0))
	stop := in.Start(context.Background(), time.Millisecond)
	require.Eventually(t, func() bool { return in.Injected() >= 2 }, 5*time.Second, time.Millisecond)
	stop()
	n := in.Injected()
	time.Sleep(10 * time.Millisecond)
	require.Equal(t, n, in.Injected(), "nothing injected after stop")
}
