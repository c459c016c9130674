package nexmark_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/nexmark"
	"github.com/strom-dev/strom/nexmark/reference"
)

// refCase is a generated input the engine's results are checked on.
type refCase struct {
	name   string
	cfg    nexmark.GeneratorConfig
	events int64
}

// refCases: at 1000 events/s of event time, 30k events span 30 s: 3 q7/q8 windows, 15
// q5 windows, hundreds of auction closes and q11 sessions. One case is out of order by
// up to 3 s; the last runs at the default rate (10M events/s), where every window is
// still open at the end of the input.
func refCases() []refCase {
	n := int64(30_000)
	if raceEnabled {
		n = 20_000
	}
	var out []refCase
	for _, seed := range []int64{1, 2, 3} {
		out = append(out, refCase{name: fmt.Sprintf("seed%d", seed), events: n,
			cfg: nexmark.GeneratorConfig{Seed: seed, EventsPerSecond: 1000}})
	}
	out = append(out, refCase{name: "ooo3s", events: n,
		cfg: nexmark.GeneratorConfig{Seed: 4, EventsPerSecond: 1000, OutOfOrderness: 3 * time.Second}})
	out = append(out, refCase{name: "default-rate", events: n, cfg: nexmark.GeneratorConfig{Seed: 5}})
	return out
}

var (
	refMu    sync.Mutex
	refCache = map[string][]string{}
)

// expected returns the reference's canonical rows and row count for query on c.
func expected(t *testing.T, query string, c refCase) ([]string, int) {
	t.Helper()
	refMu.Lock()
	defer refMu.Unlock()
	k := query + "/" + c.name
	if v, ok := refCache[k]; ok {
		return v[1:], len(v[0])
	}
	rows := referenceRows(t, query, c)
	canon := reference.Canonical(query, rows)
	// The row count rides in the cache as the length of a dummy first entry.
	refCache[k] = append([]string{strings.Repeat(".", len(rows))}, canon...)
	return canon, len(rows)
}

// requireSameRows compares canonical row sets with a readable failure.
func requireSameRows(t *testing.T, want, got []string) {
	t.Helper()
	if slices.Equal(want, got) {
		return
	}
	var missing, extra []string
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got) || (i < len(want) && want[i] < got[j]):
			missing = append(missing, want[i])
			i++
		case i == len(want) || got[j] < want[i]:
			extra = append(extra, got[j])
			j++
		default:
			i++
			j++
		}
	}
	head := func(s []string) []string { return s[:min(len(s), 5)] }
	t.Fatalf("rows differ from the reference: want %d, got %d; %d missing, e.g. %q; %d extra, e.g. %q",
		len(want), len(got), len(missing), head(missing), len(extra), head(extra))
}

// runEngine runs query on the engine and returns its rows as JSON lines in sink order.
func runEngine(t *testing.T, cfg nexmark.RunConfig) []string {
	t.Helper()
	out, lines := nexmark.CollectLines()
	cfg.Output = out
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := nexmark.Run(ctx, cfg)
	require.NoError(t, err)
	got := lines()
	require.Equal(t, int64(len(got)), res.Rows)
	return got
}

// checkRows checks engine rows against the reference.
func checkRows(t *testing.T, query string, c refCase, got []string) {
	t.Helper()
	want, wantN := expected(t, query, c)
	rows := make([]nexmark.Row, len(got))
	for i, l := range got {
		rows[i] = rawRow(l)
	}
	if query == "q4" {
		checkQ4Order(t, c, got)
	}
	requireSameRows(t, want, reference.Canonical(query, rows))
	require.Equal(t, wantN, len(got), "number of rows")
}

// rawRow is a row already in JSON.
type rawRow string

func (r rawRow) AppendJSON(dst []byte) []byte { return append(dst, r...) }

// checkQ4Order checks that each category's rows come in the order its updates
// happened: the k-th row of a category averages k winning prices, so consecutive rows
// give the k-th price as k·avg_k − (k−1)·avg_{k−1}. In update order these are the
// category's winning prices (the reference's q9 prices); any swap of rows would give
// other numbers.
func checkQ4Order(t *testing.T, c refCase, lines []string) {
	t.Helper()
	want := map[int64][]int64{}
	for _, r := range referenceRows(t, "q9", c) {
		w := r.(nexmark.Q9Row)
		want[w.Category] = append(want[w.Category], w.Price)
	}
	got := map[int64][]int64{}
	prev := map[int64]float64{}
	for _, l := range lines {
		var r nexmark.Q4Row
		require.NoError(t, json.Unmarshal([]byte(l), &r))
		k := float64(len(got[r.ID]) + 1)
		price := math.Round(k*r.Final - (k-1)*prev[r.ID])
		got[r.ID] = append(got[r.ID], int64(price))
		prev[r.ID] = r.Final
	}
	require.Len(t, got, len(want), "categories")
	for cat := range want {
		slices.Sort(want[cat])
		slices.Sort(got[cat])
		if !slices.Equal(want[cat], got[cat]) {
			t.Fatalf("category %d: the winning prices recovered from the q4 rows in sink order are not the "+
				"category's winning prices: the rows are not in update order", cat)
		}
	}
}

// referenceRows returns the reference's rows for query on c.
func referenceRows(t *testing.T, query string, c refCase) []nexmark.Row {
	t.Helper()
	g := nexmark.NewGenerator(c.cfg)
	evs := make([]nexmark.Event, c.events)
	for n := range evs {
		evs[n] = g.Event(int64(n))
	}
	rows, err := reference.Run(query, evs)
	require.NoError(t, err)
	return rows
}

// writeEvents writes c's events as JSON lines to a file under dir.
func writeEvents(t *testing.T, dir string, c refCase) string {
	t.Helper()
	path := filepath.Join(dir, c.name+".jsonl")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, nexmark.WriteEvents(f, nexmark.NewGenerator(c.cfg), c.events))
	require.NoError(t, f.Close())
	return path
}

// TestQueriesMatchReference runs every query at parallelism 1, 2 and 4 over generated
// events (the in-process generator source) and over the same events written to a
// JSON-lines file (the --input path), and compares the rows with the reference.
func TestQueriesMatchReference(t *testing.T) {
	cases := refCases()
	dir := t.TempDir()
	files := map[string]string{}
	for _, c := range cases {
		files[c.name] = writeEvents(t, dir, c)
	}
	for _, q := range nexmark.Queries {
		t.Run(q, func(t *testing.T) {
			for _, c := range cases {
				for _, p := range []int{1, 2, 4} {
					t.Run(fmt.Sprintf("%s/gen/p%d", c.name, p), func(t *testing.T) {
						got := runEngine(t, nexmark.RunConfig{Query: q, Generator: c.cfg, Events: c.events, Parallelism: p})
						checkRows(t, q, c, got)
					})
					t.Run(fmt.Sprintf("%s/file/p%d", c.name, p), func(t *testing.T) {
						got := runEngine(t, nexmark.RunConfig{Query: q, Input: files[c.name],
							OutOfOrderness: c.cfg.OutOfOrderness, Parallelism: p})
						checkRows(t, q, c, got)
					})
				}
			}
		})
	}
}
