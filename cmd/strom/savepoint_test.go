package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/savepoint"
	"github.com/strom-dev/strom/internal/savepoint/savepointtest"
)

// runCLI runs the strom command with args and returns stdout and the error.
func runCLI(args ...string) (string, error) {
	cmd := rootCmd()
	cmd.SetArgs(args)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&bytes.Buffer{})
	err := cmd.Execute()
	return out.String(), err
}

// `strom savepoint inspect` on a checkpoint written by a real job: the
// table, the JSON summary, and a dump of the count state with every key's
// exact count.
func TestSavepointInspect(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := savepointtest.CountingCheckpoint(t, t.TempDir())

	table, err := runCLI("savepoint", "inspect", dir)
	require.NoError(t, err)
	t.Logf("strom savepoint inspect:\n%s", table)
	require.Contains(t, table, "CHECKPOINT ")
	require.Regexp(t, regexp.MustCompile(`(?m)^counts\s+\S.*\s2\s+\d+\s+0$`), table, "operator row: uid, name, parallelism 2")
	require.Regexp(t, regexp.MustCompile(`(?m)^counts\s+count\s+keyed\s+value<string,int64>\s+12\s+\d+ B$`), table)
	require.Regexp(t, regexp.MustCompile(`(?m)\s_source_splits\s+operator\s+list\s+2\s+\d+ B$`), table)

	js, err := runCLI("savepoint", "inspect", "--json", filepath.Join(dir, "_metadata"))
	require.NoError(t, err)
	var sum savepoint.Summary
	require.NoError(t, json.Unmarshal([]byte(js), &sum), js)
	require.Equal(t, "CHECKPOINT", sum.Kind)
	var keys int64
	for _, op := range sum.Operators {
		for _, ks := range op.KeyedStates {
			if op.UID == savepointtest.CountUID && ks.Name == savepointtest.CountState {
				require.Equal(t, "value<string,int64>", ks.Type)
				require.Equal(t, "int64", ks.Schema.Value.Kind)
				keys = *ks.Keys
			}
		}
	}
	require.Equal(t, int64(savepointtest.Keys), keys)

	dump, err := runCLI("savepoint", "inspect", dir, "--operator", savepointtest.CountUID, "--state", savepointtest.CountState)
	require.NoError(t, err)
	got := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(dump))
	for sc.Scan() {
		var line struct {
			Key   string
			Value int64
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		got[line.Key] = line.Value
	}
	want := map[string]int64{}
	for i := range int64(savepointtest.Records) {
		want[savepointtest.Key(i)]++
	}
	require.Equal(t, want, got)

	// Unknown operator and state: errors that list what there is.
	_, err = runCLI("savepoint", "inspect", dir, "--operator", "nope", "--state", "count")
	require.ErrorIs(t, err, savepoint.ErrUnknownOperator)
	require.ErrorContains(t, err, "counts")
	_, err = runCLI("savepoint", "inspect", dir, "--operator", savepointtest.CountUID, "--state", "nope")
	require.ErrorIs(t, err, savepoint.ErrUnknownState)
	require.ErrorContains(t, err, "count")
}

func TestSavepointInspectErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	tmp := t.TempDir()
	corrupt := filepath.Join(tmp, "corrupt")
	require.NoError(t, os.Mkdir(corrupt, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(corrupt, "_metadata"), []byte("STROMCKP\x00\x01 not really"), 0o644))
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"savepoint", "inspect", filepath.Join(tmp, "missing")}, "no such checkpoint or savepoint"},
		{[]string{"savepoint", "inspect", tmp}, "not a checkpoint or savepoint directory"},
		{[]string{"savepoint", "inspect", corrupt}, "corrupt checkpoint metadata"},
		{[]string{"savepoint", "inspect"}, "accepts 1 arg"},
		{[]string{"savepoint", "inspect", tmp, "--state", "x"}, "--operator and --state go together"},
	} {
		_, err := runCLI(c.args...)
		require.ErrorContains(t, err, c.msg, "args %v", c.args)
	}
}

// The real binary exits 1 with the error on stderr.
func TestSavepointInspectBinaryExitCode(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "savepoint", "inspect", filepath.Join(t.TempDir(), "missing"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 1, ee.ExitCode())
	require.Contains(t, stderr.String(), "strom: no such checkpoint or savepoint")
}

// buildBinary builds the strom binary into a temporary directory (skipped
// with -short).
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "strom")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	return bin
}
