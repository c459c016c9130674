package jobstore

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Dir is a Store of one JSON file per job in a directory (JOBID.json),
// for a JobManager process: its records survive the process.
//
// A record is written to a temporary file in the same directory, synced,
// and renamed over JOBID.json, then the directory is synced: a reader —
// or a JobManager started after a crash — finds the old record or the
// new one, never a torn one. Temporary files left by a crash are ignored
// by List and removed by the next Put of their job.
type Dir struct {
	dir string
}

const ext = ".json"

// OpenDir returns the store in dir, creating the directory if needed.
func OpenDir(dir string) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("job store: %w", err)
	}
	return &Dir{dir: dir}, nil
}

func (d *Dir) path(id string) string { return filepath.Join(d.dir, id+ext) }

// Put implements Store.
func (d *Dir) Put(r Record) error {
	if err := validID(r.JobID); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("job store: encoding the record of job %s: %w", r.JobID, err)
	}
	// Leftovers of an interrupted Put of this job.
	if old, err := filepath.Glob(filepath.Join(d.dir, "."+r.JobID+".tmp-*")); err == nil {
		for _, o := range old {
			_ = os.Remove(o)
		}
	}
	f, err := os.CreateTemp(d.dir, "."+r.JobID+".tmp-*")
	if err != nil {
		return fmt.Errorf("job store: writing the record of job %s: %w", r.JobID, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, d.path(r.JobID))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("job store: writing the record of job %s: %w", r.JobID, err)
	}
	if err := d.syncDir(); err != nil {
		return fmt.Errorf("job store: writing the record of job %s: %w", r.JobID, err)
	}
	return nil
}

// syncDir makes the rename (or removal) durable.
func (d *Dir) syncDir() error {
	f, err := os.Open(d.dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Remove implements Store.
func (d *Dir) Remove(jobID string) error {
	if err := validID(jobID); err != nil {
		return err
	}
	if err := os.Remove(d.path(jobID)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("job store: removing the record of job %s: %w", jobID, err)
	}
	return d.syncDir()
}

// List implements Store.
func (d *Dir) List() ([]Record, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("job store: %w", err)
	}
	var out []Record
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ext) {
			continue // temporary files of interrupted writes, and strangers
		}
		p := filepath.Join(d.dir, name)
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("job store: reading %s: %w", p, err)
		}
		var r Record
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("job store: %w: %s: %w", ErrCorrupt, p, err)
		}
		if want := strings.TrimSuffix(name, ext); r.JobID != want {
			return nil, fmt.Errorf("job store: %w: %s holds job %q", ErrCorrupt, p, r.JobID)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].JobID < out[j].JobID })
	return out, nil
}
