package strom_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/window"
)

var errUser = errors.New("user code says no")

// Every kind of user function can fail by returning an error; the job's
// error is a *TaskError naming job, operator, subtask and attempt, wrapping
// the user's error.
func TestEveryUserFunctionCanReturnAnError(t *testing.T) {
	fail := func(v int) bool { return v == 7 }
	timed := func(env *strom.Environment) strom.Stream[int] {
		return strom.AssignTimestamps(strom.FromSlice(env, rangeSlice(20)),
			strom.Monotonous[int]().WithTimestamps(func(v int) int64 { return int64(v) }))
	}
	cases := map[string]func(env *strom.Environment){
		"TryMap": func(env *strom.Environment) {
			strom.Discard(strom.TryMap(strom.FromSlice(env, rangeSlice(20)), func(v int) (int, error) {
				if fail(v) {
					return 0, errUser
				}
				return v, nil
			}).Name("Failing"))
		},
		"TryFilter": func(env *strom.Environment) {
			strom.Discard(strom.TryFilter(strom.FromSlice(env, rangeSlice(20)), func(v int) (bool, error) {
				if fail(v) {
					return false, errUser
				}
				return true, nil
			}).Name("Failing"))
		},
		"TryFlatMap": func(env *strom.Environment) {
			strom.Discard(strom.TryFlatMap(strom.FromSlice(env, rangeSlice(20)), func(v int, out strom.Collector[int]) error {
				if fail(v) {
					return errUser
				}
				out.Collect(v)
				return nil
			}).Name("Failing"))
		},
		"KeyedProcess": func(env *strom.Environment) {
			strom.Discard(strom.KeyedProcessFunc(strom.KeyBy(strom.FromSlice(env, rangeSlice(20)), func(v int) int { return v % 3 }),
				func(ctx *strom.KeyedContext[int, int], v int) error {
					if fail(v) {
						return errUser
					}
					return nil
				}).Name("Failing"))
		},
		"Process": func(env *strom.Environment) {
			strom.Discard(strom.Process(strom.FromSlice(env, rangeSlice(20)), func() strom.ProcessFunction[int, int] {
				return strom.ProcessElementFunc[int, int](func(ctx *strom.ProcessContext[int], v int) error {
					if fail(v) {
						return errUser
					}
					return nil
				})
			}).Name("Failing"))
		},
		"WindowProcess": func(env *strom.Environment) {
			strom.Discard(strom.WindowProcess(strom.Window(strom.KeyBy(timed(env), func(v int) int { return v % 3 }), window.Tumbling(5*time.Millisecond)),
				func(ctx *strom.WindowContext[int, int], elems []int) error {
					if ctx.Window().Start == 5 {
						return errUser
					}
					return nil
				}).Name("Failing"))
		},
		"IntervalJoin": func(env *strom.Environment) {
			k := strom.KeyBy(timed(env), func(v int) int { return v % 3 })
			strom.Discard(strom.IntervalJoin(k, k, 0, 0, func(a, b int, out strom.Collector[int]) error {
				if fail(a) {
					return errUser
				}
				return nil
			}).Name("Failing"))
		},
		"SinkFunc": func(env *strom.Environment) {
			strom.SinkFunc(strom.FromSlice(env, rangeSlice(20)), func(v int) error {
				if fail(v) {
					return errUser
				}
				return nil
			}).Name("Failing")
		},
		"SourceReader": func(env *strom.Environment) {
			strom.Discard(strom.FromSource[int](env, badSource{readErr: errUser}, "Failing"))
		},
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			env := newEnv(2)
			build(env)
			_, err := run(t, env, name)
			require.ErrorIs(t, err, strom.ErrJobFailed)
			require.ErrorIs(t, err, errUser, "the user's error is in the chain")
			var te *strom.TaskError
			require.ErrorAs(t, err, &te)
			require.Equal(t, name, te.Job)
			require.Len(t, te.JobID, 32)
			require.Equal(t, "Failing", te.Operator)
			require.Contains(t, te.Task, "Failing")
			require.GreaterOrEqual(t, te.Subtask, 0)
			require.Less(t, te.Subtask, te.Parallelism)
			require.Equal(t, 0, te.Attempt)
			require.Empty(t, te.Stack, "an error is not a panic")
		})
	}
}

// A panic is the other way to fail: the TaskError carries the panic's
// message and its stack.
func TestPanicIsATaskErrorWithStack(t *testing.T) {
	env := newEnv(1)
	strom.Discard(strom.Map(strom.FromSlice(env, rangeSlice(5)), func(v int) int {
		if v == 3 {
			panic("three")
		}
		return v
	}).Name("Panicky"))
	_, err := run(t, env, "panic")
	var te *strom.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "Panicky", te.Operator)
	require.ErrorContains(t, te.Err, "panic: three")
	require.True(t, strings.Contains(te.Stack, "goroutine "), "stack: %q", te.Stack)
}

// The subtask's context reaches sources, sinks and process functions, and
// is cancelled when the job is: user code blocked on it returns at once.
func TestContextReachesUserCode(t *testing.T) {
	started := make(chan struct{}, 8)
	cases := map[string]func(env *strom.Environment){
		"sink": func(env *strom.Environment) {
			strom.SinkTo(strom.FromSlice(env, rangeSlice(5)), "Blocking", func(c strom.SinkContext) (strom.SinkWriter[int], error) {
				return &funcSink[int]{write: func(int) error {
					started <- struct{}{}
					<-c.Context.Done()
					return c.Context.Err()
				}}, nil
			})
		},
		"keyed process": func(env *strom.Environment) {
			strom.Discard(strom.KeyedProcessFunc(strom.KeyBy(strom.FromSlice(env, rangeSlice(5)), func(v int) int { return v }),
				func(ctx *strom.KeyedContext[int, int], v int) error {
					started <- struct{}{}
					<-ctx.Context().Done()
					return ctx.Context().Err()
				}))
		},
		"process": func(env *strom.Environment) {
			strom.Discard(strom.Process(strom.FromSlice(env, rangeSlice(5)), func() strom.ProcessFunction[int, int] {
				return strom.ProcessElementFunc[int, int](func(ctx *strom.ProcessContext[int], v int) error {
					started <- struct{}{}
					<-ctx.Context().Done()
					return ctx.Context().Err()
				})
			}))
		},
		"source": func(env *strom.Environment) {
			strom.Discard(strom.FromSource[int](env, blockingSource{started: started}, "Blocking Source"))
		},
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			env := newEnv(1)
			build(env)
			ctx, cancel := context.WithCancel(context.Background())
			jc, err := env.ExecuteAsync(ctx, name)
			require.NoError(t, err)
			defer jc.Close()
			select {
			case <-started:
			case <-time.After(30 * time.Second):
				t.Fatal("user code never ran")
			}
			cancel() // the context given to ExecuteAsync bounds the job
			res, err := jc.Wait(context.Background())
			require.ErrorIs(t, err, strom.ErrJobCanceled)
			require.ErrorIs(t, err, context.Canceled)
			require.NotErrorIs(t, err, strom.ErrJobFailed, "a cancelled job did not fail")
			require.NotNil(t, res)
			require.Equal(t, "CANCELED", jc.Status())
		})
	}
}

type blockingSource struct{ started chan struct{} }

func (blockingSource) Bounded() bool                     { return true }
func (blockingSource) Splits(int) ([]strom.Split, error) { return []strom.Split{split("one")}, nil }
func (s blockingSource) NewReader(c strom.SourceContext, _ []strom.Split) (strom.SourceReader[int], error) {
	return &blockingReader{ctx: c.Context, started: s.started}, nil
}

type blockingReader struct {
	ctx     context.Context
	started chan struct{}
}

func (r *blockingReader) Read(strom.SourceOutput[int]) (strom.ReadStatus, error) {
	r.started <- struct{}{}
	<-r.ctx.Done()
	return strom.ReadStatus{}, r.ctx.Err()
}
func (r *blockingReader) Snapshot() ([]strom.Split, error) { return nil, nil }
func (r *blockingReader) Close() error                     { return nil }

// Wait's context bounds the wait only: the job goes on until cancelled.
func TestWaitContextDoesNotCancelTheJob(t *testing.T) {
	env := newEnv(1)
	strom.Discard(datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.RatePerSecond(1000)))
	jc, err := env.ExecuteAsync(context.Background(), "long")
	require.NoError(t, err)
	defer jc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = jc.Wait(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Eventually(t, func() bool { return jc.Status() == "RUNNING" }, 10*time.Second, time.Millisecond)
	jc.Cancel()
	_, err = jc.Wait(context.Background())
	require.ErrorIs(t, err, strom.ErrJobCanceled)
	require.NotErrorIs(t, err, context.DeadlineExceeded)
}

// A context that has already ended starts no job.
func TestExecuteWithEndedContext(t *testing.T) {
	env := newEnv(1)
	strom.Discard(strom.FromElements(env, 1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := env.Execute(ctx, "never")
	require.ErrorIs(t, err, strom.ErrJobCanceled)
	require.ErrorIs(t, err, context.Canceled)
}
