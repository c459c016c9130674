package strom_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
)

type wc struct {
	Word string
	N    int
}

func TestSmokeWordCount(t *testing.T) {
	for _, p := range []int{1, 2, 4} {
		env := strom.NewEnvironment(strom.Config{Parallelism: p})
		words := datagen.FromGenerator(env, func(i int64) string { return []string{"a", "b", "c"}[i%3] }, datagen.Count(3000))
		counts := strom.Reduce(strom.KeyBy(strom.Map(words, func(w string) wc { return wc{w, 1} }), func(c wc) string { return c.Word }),
			func(a, b wc) wc { return wc{a.Word, a.N + b.N} })
		out := strom.Collect(counts)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := env.Execute(ctx, "wc")
		cancel()
		require.NoError(t, err)
		final := map[string]int{}
		for _, v := range out.Values() {
			if v.N > final[v.Word] {
				final[v.Word] = v.N
			}
		}
		require.Equal(t, map[string]int{"a": 1000, "b": 1000, "c": 1000}, final)
		require.Equal(t, 3000, out.Len())
		names := []string{}
		for _, o := range res.Operators {
			names = append(names, o.Name)
		}
		sort.Strings(names)
		t.Logf("p=%d %+v", p, res.Operators)
	}
}
