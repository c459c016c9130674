package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/nexmark"
	"github.com/strom-dev/strom/nexmark/reference"
)

// runStrom runs the strom command in-process and returns its standard output.
func runStrom(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := rootCmd()
	cmd.SetArgs(args)
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	return out.String(), err
}

// nexmarkTestConfig is the generated stream of the CLI tests: 1000 events/s of event
// time, so 20k events span many windows and auction closes.
var nexmarkTestConfig = nexmark.GeneratorConfig{Seed: 7, EventsPerSecond: 1000}

const nexmarkTestEvents = 20_000

// referenceLines is the reference's canonical result for query on the test stream.
func referenceLines(t *testing.T, query string) []string {
	t.Helper()
	g := nexmark.NewGenerator(nexmarkTestConfig)
	evs := make([]nexmark.Event, nexmarkTestEvents)
	for n := range evs {
		evs[n] = g.Event(int64(n))
	}
	rows, err := reference.Run(query, evs)
	require.NoError(t, err)
	return reference.Canonical(query, rows)
}

type jsonLine string

func (l jsonLine) AppendJSON(dst []byte) []byte { return append(dst, l...) }

// fileLines reads a JSON-lines output file in canonical form.
func fileLines(t *testing.T, query, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var rows []nexmark.Row
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		require.True(t, json.Valid(sc.Bytes()), "line %q", sc.Text())
		rows = append(rows, jsonLine(sc.Text()))
	}
	require.NoError(t, sc.Err())
	return reference.Canonical(query, rows)
}

func TestNexmarkJSONSummary(t *testing.T) {
	defer goleak.VerifyNone(t)
	out, err := runStrom(t, "nexmark", "--query", "q5", "--events", "20000", "--rate", "1000",
		"--parallelism", "2", "--json", "--baseline")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 1, "one summary line")
	var s map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &s))
	for _, k := range []string{"query", "events", "seconds", "events_per_second", "cpu_seconds",
		"events_per_cpu_second", "parallelism", "baseline_events_per_second", "cost_ratio"} {
		require.Contains(t, s, k)
	}
	require.Equal(t, "q5", s["query"])
	require.EqualValues(t, 20000, s["events"])
	require.EqualValues(t, 2, s["parallelism"])
	require.Greater(t, s["events_per_second"].(float64), 0.0)
	require.Greater(t, s["cpu_seconds"].(float64), 0.0)
	require.Greater(t, s["baseline_events_per_second"].(float64), 0.0)
	require.InDelta(t, s["events_per_second"].(float64)/s["baseline_events_per_second"].(float64), s["cost_ratio"].(float64), 1e-9)
	require.Equal(t, s["baseline_rows"], s["rows"], "engine and baseline produce the same number of rows")

	// Without --baseline the baseline fields are absent.
	out, err = runStrom(t, "nexmark", "--query", "q1", "--events", "5000", "--json")
	require.NoError(t, err)
	s = map[string]any{}
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	require.NotContains(t, s, "cost_ratio")
	require.NotContains(t, s, "baseline_events_per_second")
	require.NotContains(t, s, "fail_seed", "only with --fail-every")
	require.EqualValues(t, 0, s["last_checkpoint_ms"], "no checkpoints, no duration")
	require.EqualValues(t, 0, s["last_checkpoint_bytes"])
	require.EqualValues(t, 0, s["last_checkpoint_sync_pause_ms"])
	require.EqualValues(t, 4600, s["rows"])
}

// With --checkpoint-interval and --tps the run takes checkpoints while it reads, and
// the summary says how many completed; the rows are the same as without.
func TestNexmarkCheckpoints(t *testing.T) {
	defer goleak.VerifyNone(t)
	out, err := runStrom(t, "nexmark", "--query", "q5", "--events", "20000", "--rate", "1000", "--parallelism", "2",
		"--tps", "100000", "--checkpoint-interval", "10ms", "--checkpoint-dir", "mem://nexmark-cli-test", "--json")
	require.NoError(t, err)
	var s map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	require.Greater(t, s["checkpoints_completed"].(float64), 0.0, "no checkpoint completed in a 0.2 s run")
	require.EqualValues(t, 0, s["restarts"])
	plain, err := runStrom(t, "nexmark", "--query", "q5", "--events", "20000", "--rate", "1000", "--parallelism", "2", "--json")
	require.NoError(t, err)
	var p map[string]any
	require.NoError(t, json.Unmarshal([]byte(plain), &p))
	require.Equal(t, p["rows"], s["rows"])
	require.EqualValues(t, 0, p["checkpoints_completed"])
}

// With checkpoints --output is a directory written exactly once: its committed
// files together hold the reference's rows, and nothing is left in progress.
func TestNexmarkExactlyOnceOutput(t *testing.T) {
	defer goleak.VerifyNone(t)
	// q3 is a join: the unaligned run takes barriers on two inputs.
	for _, c := range []struct{ q, mode string }{{"q3", "aligned"}, {"q7", "aligned"}, {"q3", "unaligned"}} {
		q := c.q
		dir := filepath.Join(t.TempDir(), q+"-"+c.mode)
		out, err := runStrom(t, "nexmark", "--query", q, "--events", "20000", "--rate", "1000", "--seed", "7",
			"--parallelism", "2", "--tps", "100000", "--checkpoint-interval", "20ms", "--checkpoint-mode", c.mode,
			"--checkpoint-dir", "mem://nexmark-output-"+q+"-"+c.mode, "--output", dir, "--json")
		require.NoError(t, err)
		var s map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &s))
		require.Greater(t, s["checkpoints_completed"].(float64), 1.0, "checkpoints mid-run and the final one")
		require.Greater(t, s["last_checkpoint_ms"].(float64), 0.0)
		require.Greater(t, s["last_checkpoint_bytes"].(float64), 0.0, "the sources' positions at least")
		require.Greater(t, s["last_checkpoint_sync_pause_ms"].(float64), 0.0)
		require.Equal(t, referenceLines(t, q), committedLines(t, q, dir), q)
	}
}

// committedLines reads the committed files of an exactly-once output directory in
// canonical form, requiring that nothing is left in progress.
func committedLines(t *testing.T, query, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var rows []nexmark.Row
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), "."), "left in progress: %s", e.Name())
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l != "" {
				rows = append(rows, jsonLine(l))
			}
		}
	}
	return reference.Canonical(query, rows)
}

// failureFreeLines runs q over the test stream without checkpoints into a file
// below dir and returns its rows in canonical form, checked against the
// reference: what a stopped, failed or restarted run must commit in all.
func failureFreeLines(t *testing.T, q, dir string) []string {
	t.Helper()
	plain := filepath.Join(dir, "plain.jsonl")
	_, err := runStrom(t, "nexmark", "--query", q, "--events", "20000", "--rate", "1000", "--seed", "7",
		"--parallelism", "2", "--output", plain)
	require.NoError(t, err)
	want := fileLines(t, q, plain)
	require.NotEmpty(t, want)
	require.Equal(t, referenceLines(t, q), want, "the failure-free run matches the reference")
	return want
}

// With --fail-every a random subtask panics every 250 ms of a run that --tps
// stretches over two seconds: the job restarts from its checkpoints several times,
// and the exactly-once output directory still holds exactly the rows of a
// failure-free run (and the reference's), none twice, none missing.
func TestNexmarkFailEveryExactlyOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, q := range []string{"q5", "q8"} {
		t.Run(q, func(t *testing.T) {
			dir := t.TempDir()
			want := failureFreeLines(t, q, dir)

			out := filepath.Join(dir, "chaos")
			sum, err := runStrom(t, "nexmark", "--query", q, "--events", "20000", "--rate", "1000", "--seed", "7",
				"--parallelism", "2", "--tps", "10000", "--checkpoint-interval", "30ms",
				"--checkpoint-dir", "mem://nexmark-fail-every-"+q, "--fail-every", "250ms", "--fail-seed", "3",
				"--output", out, "--json")
			require.NoError(t, err)
			var s map[string]any
			require.NoError(t, json.Unmarshal([]byte(sum), &s))
			require.Greater(t, s["restarts"].(float64), 0.0, "no failure was injected into the 2 s run")
			require.Greater(t, s["checkpoints_completed"].(float64), 0.0)
			require.Greater(t, s["last_checkpoint_ms"].(float64), 0.0)
			require.EqualValues(t, 3, s["fail_seed"])
			require.GreaterOrEqual(t, s["failures_injected"].(float64), s["restarts"].(float64),
				"every restart was caused by an injected failure")
			require.Equal(t, want, committedLines(t, q, out), "%s: committed rows with failures = rows without", q)
			require.EqualValues(t, len(want), s["rows"], "rows counts the committed rows")
		})
	}
}

// A run stopped with a savepoint mid-way (--stop-with-savepoint-after) and a
// run resumed from it (--from-savepoint) at another parallelism, both writing
// into the same exactly-once --output directory, together commit exactly the
// rows of a failure-free run: the generated sources resume at the position
// the savepoint holds, and nothing after the savepoint was committed by the
// stopped run.
func TestNexmarkStopWithSavepointAndResume(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, q := range []string{"q5", "q8"} {
		t.Run(q, func(t *testing.T) {
			dir := t.TempDir()
			want := failureFreeLines(t, q, dir)

			out := filepath.Join(dir, "out")
			spDir := filepath.Join(dir, "savepoints")
			// 20k events at 10k/s take 2 s: the stop falls in the middle.
			sum, err := runStrom(t, "nexmark", "--query", q, "--events", "20000", "--rate", "1000", "--seed", "7",
				"--parallelism", "2", "--tps", "10000", "--checkpoint-interval", "50ms",
				"--checkpoint-dir", "mem://nexmark-stop-"+q, "--stop-with-savepoint-after", "700ms",
				"--savepoint-dir", spDir, "--output", out, "--json")
			require.NoError(t, err)
			var s1 map[string]any
			require.NoError(t, json.Unmarshal([]byte(sum), &s1))
			path, _ := s1["savepoint_path"].(string)
			require.NotEmpty(t, path, "no savepoint: %s", sum)
			require.Contains(t, path, spDir)
			stopped := committedLines(t, q, out)
			require.Less(t, len(stopped), len(want), "the stopped run committed everything: it did not stop mid-run")

			sum, err = runStrom(t, "nexmark", "--query", q, "--events", "20000", "--rate", "1000", "--seed", "7",
				"--parallelism", "3", "--tps", "10000", "--checkpoint-interval", "50ms",
				"--checkpoint-dir", "mem://nexmark-resume-"+q, "--from-savepoint", path, "--output", out, "--json")
			require.NoError(t, err)
			var s2 map[string]any
			require.NoError(t, json.Unmarshal([]byte(sum), &s2))
			require.Equal(t, "", s2["savepoint_path"], "the resumed run ran to its end")
			require.Positive(t, s1["events"], "the stopped run read nothing")
			require.Positive(t, s2["events"], "the resumed run read nothing")
			require.EqualValues(t, 20000, s1["events"].(float64)+s2["events"].(float64),
				"the resumed run's sources continue where the stopped run's stopped")
			require.Equal(t, want, committedLines(t, q, out), "%s: stopped + resumed rows = a failure-free run's", q)
			require.EqualValues(t, len(want)-len(stopped), s2["rows"], "rows counts what the resumed run committed")
		})
	}
}

// The text summary prints the savepoint a run was stopped with.
func TestNexmarkHumanReadableSavepoint(t *testing.T) {
	defer goleak.VerifyNone(t)
	spDir := t.TempDir()
	out, err := runStrom(t, "nexmark", "--query", "q1", "--events", "20000", "--tps", "10000",
		"--stop-with-savepoint-after", "300ms", "--savepoint-dir", spDir)
	require.NoError(t, err)
	require.Regexp(t, `stopped with savepoint \S*`+regexp.QuoteMeta(spDir)+`/savepoint-\S+`, out)
}

func TestNexmarkHumanReadable(t *testing.T) {
	defer goleak.VerifyNone(t)
	out, err := runStrom(t, "nexmark", "--query", "q2", "--events", "10000", "--baseline")
	require.NoError(t, err)
	for _, want := range []string{"nexmark q2", "events               10000", "seconds", "events/s",
		"CPU seconds", "events per CPU-s", "rows produced", "baseline", "COST ratio"} {
		require.Contains(t, out, want)
	}
}

// The text summary of a run with failures says how long the last checkpoint took,
// how many failures were injected and with which seed (to repeat the choices).
func TestNexmarkHumanReadableFailures(t *testing.T) {
	defer goleak.VerifyNone(t)
	out, err := runStrom(t, "nexmark", "--query", "q1", "--events", "20000", "--tps", "20000",
		"--checkpoint-interval", "20ms", "--checkpoint-dir", "mem://nexmark-human-failures",
		"--fail-every", "300ms", "--fail-seed", "5")
	require.NoError(t, err)
	for _, want := range []string{"checkpoints", "last checkpoint", "ms (trigger to metadata written)", "restarts",
		"failures injected", "(--fail-seed 5)"} {
		require.Contains(t, out, want)
	}
}

// TestNexmarkOutputMatchesReference checks --output files against the reference, for
// generated events and for the same events read back with --input.
func TestNexmarkOutputMatchesReference(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	input := filepath.Join(dir, "events.jsonl")
	f, err := os.Create(input)
	require.NoError(t, err)
	require.NoError(t, nexmark.WriteEvents(f, nexmark.NewGenerator(nexmarkTestConfig), nexmarkTestEvents))
	require.NoError(t, f.Close())
	for _, q := range []string{"q3", "q4", "q7", "q11"} {
		want := referenceLines(t, q)
		require.NotEmpty(t, want)
		gen := filepath.Join(dir, q+"-gen.jsonl")
		_, err := runStrom(t, "nexmark", "--query", q, "--events", "20000", "--rate", "1000", "--seed", "7",
			"--parallelism", "2", "--output", gen)
		require.NoError(t, err)
		require.Equal(t, want, fileLines(t, q, gen), "%s over generated events", q)

		fromFile := filepath.Join(dir, q+"-file.jsonl")
		out, err := runStrom(t, "nexmark", "--query", q, "--input", input, "--parallelism", "2",
			"--output", fromFile, "--json")
		require.NoError(t, err)
		require.Equal(t, want, fileLines(t, q, fromFile), "%s over --input", q)
		var s map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &s))
		require.EqualValues(t, nexmarkTestEvents, s["events"], "events read from the file")
	}
}

func TestNexmarkErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	var good bytes.Buffer
	require.NoError(t, nexmark.WriteEvents(&good, nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 1}), 2))
	require.NoError(t, os.WriteFile(bad, append(good.Bytes(), "\n{\"event_type\":2,\"bid\":{\"auction\":1}}\n"...), 0o644))

	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown query", []string{"--query", "q6"}, []string{`unknown query "q6"`, strings.Join(nexmark.Queries, ", ")}},
		{"no query", nil, []string{"query"}},
		{"events and input", []string{"--query", "q0", "--events", "10", "--input", bad}, []string{"--events", "--input"}},
		{"missing input", []string{"--query", "q0", "--input", filepath.Join(dir, "nope.jsonl")}, []string{"nope.jsonl", "no such file"}},
		{"malformed line", []string{"--query", "q0", "--input", bad}, []string{"bad.jsonl: line 4:", "invalid event JSON"}},
		{"bad parallelism", []string{"--query", "q0", "--events", "10", "--parallelism", "0"}, []string{"--parallelism"}},
		{"baseline with input", []string{"--query", "q0", "--input", bad, "--baseline"}, []string{"--baseline"}},
		{"negative tps", []string{"--query", "q0", "--events", "10", "--tps", "-1"}, []string{"--tps"}},
		{"tps with input", []string{"--query", "q0", "--input", bad, "--tps", "10"}, []string{"--tps", "--input"}},
		{"unknown mode", []string{"--query", "q0", "--events", "10", "--checkpoint-mode", "sometimes"}, []string{"--checkpoint-mode", "sometimes"}},
		{"fail-every without checkpoints", []string{"--query", "q0", "--events", "10", "--fail-every", "1s"}, []string{"--fail-every", "--checkpoint-interval"}},
		{"negative fail-every", []string{"--query", "q0", "--events", "10", "--checkpoint-interval", "1s", "--fail-every", "-1s"}, []string{"--fail-every"}},
		{"negative interval", []string{"--query", "q0", "--events", "10", "--checkpoint-interval", "-1s"}, []string{"--checkpoint-interval"}},
		{"stop without savepoint dir", []string{"--query", "q0", "--events", "10", "--stop-with-savepoint-after", "1s"}, []string{"--stop-with-savepoint-after", "--savepoint-dir"}},
		{"negative stop", []string{"--query", "q0", "--events", "10", "--stop-with-savepoint-after", "-1s", "--savepoint-dir", dir}, []string{"--stop-with-savepoint-after"}},
		{"missing savepoint", []string{"--query", "q0", "--events", "10", "--from-savepoint", filepath.Join(dir, "no-savepoint")}, []string{"no-savepoint", "not a savepoint"}},
		{"not a savepoint", []string{"--query", "q0", "--events", "10", "--from-savepoint", dir}, []string{dir, "not a savepoint"}},
		{"bad checkpoint dir", []string{"--query", "q0", "--events", "10", "--checkpoint-interval", "1s", "--checkpoint-dir", "relative/dir"}, []string{"relative/dir"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := runStrom(t, append([]string{"nexmark"}, c.args...)...)
			require.Error(t, err)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestNexmarkBinaryExitCodes runs the real binary: errors exit non-zero with the message
// on standard error.
func TestNexmarkBinaryExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "strom")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	bad := filepath.Join(dir, "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte("{\"event_type\":7}\n"), 0o644))

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"nexmark", "--query", "q42"}, "unknown query"},
		{[]string{"nexmark", "--query", "q0", "--input", bad}, "line 1:"},
		{[]string{"nexmark", "--query", "q0", "--stop-with-savepoint-after", "1s"}, "needs --savepoint-dir"},
		{[]string{"nexmark", "--query", "q0", "--events", "10", "--from-savepoint", filepath.Join(dir, "nope")}, "not a savepoint"},
	} {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, c.args...)
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit), "%v: %v", c.args, err)
		require.NotZero(t, exit.ExitCode())
		require.Contains(t, stderr.String(), c.want)
	}
	out, err := exec.Command(bin, "nexmark", "--query", "q0", "--events", "1000", "--json").Output()
	require.NoError(t, err)
	require.True(t, json.Valid(bytes.TrimSpace(out)), "%s", out)
}
