// Package stromtest has the helpers that the tests of package strom and of
// the connectors share: environments with quiet logs and small batches,
// and running a job with a deadline that only a hang reaches.
package stromtest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
)

// NewEnv returns an environment with quiet logs and small batches, so
// tests cross batch boundaries with little data.
func NewEnv(p int, opts ...func(*strom.Config)) *strom.Environment {
	cfg := strom.Config{Parallelism: p, BatchSize: 16, Logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	return strom.NewEnvironment(cfg)
}

// Run executes the job with a deadline that only a hang reaches.
func Run(t *testing.T, env *strom.Environment, name string) (*strom.JobResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := env.Execute(ctx, name)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "job %q hung", name)
	return res, err
}

// MustRun is Run for a job that must succeed.
func MustRun(t *testing.T, env *strom.Environment, name string) *strom.JobResult {
	t.Helper()
	res, err := Run(t, env, name)
	require.NoError(t, err)
	return res
}

// Ints returns 0, 1, ..., n-1.
func Ints(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}
