package jobstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/jobgraph"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func graph(name string) *jobgraph.JobGraph {
	return &jobgraph.JobGraph{JobName: name, MaxParallelism: 128, Vertices: []*jobgraph.JobVertex{{ID: 0, Name: "src", Parallelism: 2}}}
}

// Both stores keep the same contract: put replaces, remove forgets, list is
// ordered by job id and returns what was put.
func TestStores(t *testing.T) {
	dir, err := OpenDir(filepath.Join(t.TempDir(), "jobs"))
	require.NoError(t, err)
	for name, s := range map[string]Store{"memory": NewMemory(), "dir": dir} {
		t.Run(name, func(t *testing.T) {
			l, err := s.List()
			require.NoError(t, err)
			require.Empty(t, l)
			require.NoError(t, s.Put(Record{JobID: "b", JobName: "second", JobGraph: graph("second")}))
			require.NoError(t, s.Put(Record{JobID: "a", JobName: "first", JobGraph: graph("first"), Extra: map[string]string{"binary": "x"}}))
			require.NoError(t, s.Put(Record{JobID: "b", JobName: "second", JobGraph: graph("second"), Incarnation: 3}))
			l, err = s.List()
			require.NoError(t, err)
			require.Len(t, l, 2)
			require.Equal(t, "a", l[0].JobID)
			require.Equal(t, "x", l[0].Extra["binary"])
			require.Equal(t, "first", l[0].JobGraph.JobName)
			require.Equal(t, 2, l[0].JobGraph.Vertices[0].Parallelism)
			require.Equal(t, "b", l[1].JobID)
			require.Equal(t, 3, l[1].Incarnation)
			require.NoError(t, s.Remove("a"))
			require.NoError(t, s.Remove("never-there"))
			l, err = s.List()
			require.NoError(t, err)
			require.Len(t, l, 1)
			require.Equal(t, "b", l[0].JobID)
			require.Error(t, s.Put(Record{}))
		})
	}
}

// A second store over the same directory (a JobManager started again)
// lists what the first one put.
func TestDirSurvivesReopen(t *testing.T) {
	p := t.TempDir()
	s, err := OpenDir(p)
	require.NoError(t, err)
	require.NoError(t, s.Put(Record{JobID: "j1", JobName: "n", JobGraph: graph("n"), Incarnation: 1}))
	s2, err := OpenDir(p)
	require.NoError(t, err)
	l, err := s2.List()
	require.NoError(t, err)
	require.Equal(t, []string{"j1"}, ids(l))
	require.Equal(t, 1, l[0].Incarnation)
}

// A corrupt record fails List with an error naming its file, rather than
// dropping the job.
func TestDirCorruptRecord(t *testing.T) {
	p := t.TempDir()
	s, err := OpenDir(p)
	require.NoError(t, err)
	require.NoError(t, s.Put(Record{JobID: "good", JobGraph: graph("g")}))
	bad := filepath.Join(p, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"jobId": "bad", "jobGraph": {`), 0o644))
	_, err = s.List()
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), bad)

	// A record under another job's name is corrupt too.
	require.NoError(t, os.WriteFile(bad, []byte(`{"jobId": "other"}`), 0o644))
	_, err = s.List()
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), bad)
}

// Put writes through a temporary file renamed over the record: a
// leftover temporary file (a crash mid-write) is never listed, the record
// it would have replaced stays readable, and the next Put cleans it up.
func TestDirAtomicWrite(t *testing.T) {
	p := t.TempDir()
	s, err := OpenDir(p)
	require.NoError(t, err)
	require.NoError(t, s.Put(Record{JobID: "j", JobGraph: graph("old")}))
	torn := filepath.Join(p, ".j.tmp-123")
	require.NoError(t, os.WriteFile(torn, []byte(`{"jobId": "j", "jobGr`), 0o644))
	l, err := s.List()
	require.NoError(t, err)
	require.Equal(t, "old", l[0].JobGraph.JobName)

	require.NoError(t, s.Put(Record{JobID: "j", JobGraph: graph("new")}))
	entries, err := os.ReadDir(p)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Equal(t, []string{"j.json"}, names, "only the record is left: no temporary file")
	l, err = s.List()
	require.NoError(t, err)
	require.Equal(t, "new", l[0].JobGraph.JobName)

	// A write that cannot complete leaves the old record as it was.
	require.NoError(t, os.Chmod(p, 0o555))
	defer os.Chmod(p, 0o755)
	if err := s.Put(Record{JobID: "j", JobGraph: graph("newer")}); err != nil {
		require.Contains(t, err.Error(), "job j")
		l, err = s.List()
		require.NoError(t, err)
		require.Equal(t, "new", l[0].JobGraph.JobName)
	} else {
		require.True(t, os.Geteuid() == 0, "only root writes into a read-only directory")
	}
}

func TestDirRefusesPathIDs(t *testing.T) {
	s, err := OpenDir(t.TempDir())
	require.NoError(t, err)
	for _, id := range []string{"../x", "a/b", ".."} {
		err := s.Put(Record{JobID: id})
		require.Error(t, err)
		require.True(t, strings.Contains(err.Error(), "cannot name a file"), err)
	}
	require.False(t, errors.Is(s.Remove("ok"), ErrCorrupt))
}

func ids(l []Record) []string {
	var out []string
	for _, r := range l {
		out = append(out, r.JobID)
	}
	return out
}
