package checkpoint

import (
	"errors"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/strom-dev/strom/internal/jobgraph"
)

// TestInvariants feeds random event sequences — stale, duplicate and
// out-of-order ones included — and checks after every event what must
// hold whatever the interleaving: ids only grow; a checkpoint ends once
// (completed or aborted); it completes only on its successful metadata
// write after all its acks, and is not aborted while that write is in
// flight; triggers go to tasks of the current attempt, within
// MaxConcurrent. The scripts show chosen interleavings; this covers the
// ones nobody thought of. (Taking out the rule that a checkpoint being
// written is not subsumed makes it fail within a few dozen runs.)
func TestInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Config{
			Interval:          time.Duration(rapid.IntRange(0, 3).Draw(t, "interval")) * time.Second,
			Timeout:           time.Duration(rapid.IntRange(1, 5).Draw(t, "timeout")) * time.Second,
			MinPause:          time.Duration(rapid.IntRange(0, 2).Draw(t, "minPause")) * 500 * time.Millisecond,
			MaxConcurrent:     rapid.IntRange(0, 3).Draw(t, "maxConcurrent"),
			TolerableFailures: rapid.IntRange(0, 2).Draw(t, "tolerable"),
		}
		p0, p1 := rapid.IntRange(1, 2).Draw(t, "p0"), rapid.IntRange(1, 2).Draw(t, "p1")
		jg := &jobgraph.JobGraph{MaxParallelism: 128, Vertices: []*jobgraph.JobVertex{
			{ID: 0, Parallelism: p0, IsSource: true, Operators: []jobgraph.OperatorInfo{{UID: "a"}}},
			{ID: 1, Parallelism: p1, Operators: []jobgraph.OperatorInfo{{UID: "b"}}},
		}, Edges: []*jobgraph.JobEdge{{From: 0, To: 1, Partition: jobgraph.Hash}}}
		c, err := New("job", jg, cfg)
		if err != nil {
			t.Fatal(err)
		}
		now := epoch
		c.Handle(EvTick{Now: now})

		var (
			lastID   ID
			minNext  ID = 1
			kinds       = map[ID]Kind{}
			written     = map[ID]bool{} // ActWriteMetadata seen
			endedIDs    = map[ID]string{}
		)
		task := func(t *rapid.T) TaskID {
			v := rapid.IntRange(0, 1).Draw(t, "vertex")
			older := 0
			if rapid.IntRange(0, 4).Draw(t, "older") == 0 {
				older = 1
			}
			return TaskID{Vertex: v, Subtask: rapid.IntRange(0, jg.Vertices[v].Parallelism-1).Draw(t, "subtask"), Attempt: c.attempt - older}
		}
		// Mostly a pending checkpoint's id, so that checkpoints complete
		// often enough to interleave; sometimes any id up to the next.
		anyID := func(t *rapid.T) ID {
			if p := c.Pending(); len(p) > 0 && rapid.IntRange(0, 3).Draw(t, "stale id") > 0 {
				return rapid.SampledFrom(p).Draw(t, "pending").ID
			}
			return ID(rapid.Int64Range(1, int64(lastID)+1).Draw(t, "id"))
		}

		for range rapid.IntRange(300, 500).Draw(t, "events") {
			var ev Event
			// Weighted towards what moves checkpoints on (ticks, acks,
			// metadata answers), so that they complete and interleave.
			switch rapid.IntRange(0, 15).Draw(t, "event") {
			case 0, 1, 2:
				now = now.Add(time.Duration(rapid.IntRange(0, 20).Draw(t, "tick")) * 100 * time.Millisecond)
				ev = EvTick{Now: now}
			case 3:
				ev = EvTrigger{Request: 1, Kind: rapid.SampledFrom([]Kind{KindCheckpoint, KindSavepoint}).Draw(t, "kind")}
			case 4:
				ev = EvTasksRunning{Attempt: c.attempt + 1 - rapid.IntRange(0, 1).Draw(t, "stale running")}
			case 5:
				ev = EvTasksStopped{Reason: "stop"}
			case 6, 7, 8, 9, 10, 11:
				id, task := anyID(t), task(t)
				// Mostly an ack the coordinator waits for.
				for _, p := range c.Pending() {
					if p.ID == id && len(p.Waiting) > 0 && rapid.IntRange(0, 3).Draw(t, "stale ack") > 0 {
						task = rapid.SampledFrom(p.Waiting).Draw(t, "waiting")
					}
				}
				ev = EvAck{ID: id, Task: task, States: []OperatorSnapshot{{UID: jg.Vertices[task.Vertex].Operators[0].UID}}}
			case 12:
				ev = EvDecline{ID: anyID(t), Task: task(t), Reason: "no"}
			case 13:
				ev = rapid.SampledFrom([]Event{EvEndOfInput{Task: task(t)}, EvTaskFinished{Task: task(t)}, EvTaskFailed{Task: task(t)}}).Draw(t, "task event")
			case 14:
				var err error
				if rapid.IntRange(0, 3).Draw(t, "write fails") == 0 {
					err = errors.New("disk full")
				}
				id := anyID(t)
				// Mostly the answer to a write in flight.
				var writing []ID
				for _, p := range c.Pending() {
					if p.Writing {
						writing = append(writing, p.ID)
					}
				}
				if len(writing) > 0 && rapid.IntRange(0, 3).Draw(t, "stale answer") > 0 {
					id = rapid.SampledFrom(writing).Draw(t, "writing")
				}
				ev = EvMetadataWritten{ID: id, Err: err}
			case 15:
				latest := ID(rapid.Int64Range(0, int64(lastID)+3).Draw(t, "latest"))
				minNext = max(minNext, latest+1)
				ev = EvRestore{LatestID: latest}
			}
			for _, a := range c.Handle(ev) {
				switch a := a.(type) {
				case ActTrigger:
					if a.ID <= lastID || a.ID < minNext {
						t.Fatalf("%v: trigger %d after %d (ids from %d on)", ev, a.ID, lastID, minNext)
					}
					lastID = a.ID
					kinds[a.ID] = a.Kind
					if len(a.Tasks) == 0 {
						t.Fatalf("trigger %d at no task", a.ID)
					}
					for _, task := range a.Tasks {
						if task.Attempt != c.attempt {
							t.Fatalf("trigger %d at %v, the attempt is %d", a.ID, task, c.attempt)
						}
					}
				case ActWriteMetadata:
					id := a.Metadata.ID
					if written[id] || endedIDs[id] != "" || kinds[id] == 0 {
						t.Fatalf("write-metadata %d: written %v, ended %q", id, written[id], endedIDs[id])
					}
					written[id] = true
				case ActNotifyComplete:
					w, ok := ev.(EvMetadataWritten)
					if !ok || w.ID != a.ID || w.Err != nil || !written[a.ID] || endedIDs[a.ID] != "" || kinds[a.ID] == KindSavepoint {
						t.Fatalf("notify-complete %d (%v) on %#v", a.ID, kinds[a.ID], ev)
					}
					endedIDs[a.ID] = "completed"
				case ActAbort:
					if a.ID == 0 && a.Request != 0 {
						// A savepoint request refused before it got an
						// id (every task finished, or a drain the job's
						// failure ended).
						if len(a.Tasks) > 0 {
							t.Fatalf("refused request %d names tasks %v", a.Request, a.Tasks)
						}
						continue
					}
					if kinds[a.ID] == 0 || endedIDs[a.ID] != "" {
						t.Fatalf("abort %d: triggered %v, ended %q", a.ID, kinds[a.ID] != 0, endedIDs[a.ID])
					}
					// Once its metadata is being written, only the write
					// decides: an abort would race the shell's write.
					if w, ok := ev.(EvMetadataWritten); written[a.ID] && (!ok || w.ID != a.ID || w.Err == nil) {
						t.Fatalf("abort %d while its metadata is written, on %#v", a.ID, ev)
					}
					endedIDs[a.ID] = "aborted"
				case ActDiscard:
					if endedIDs[a.ID] != "aborted" {
						t.Fatalf("discard for %d, which is %q", a.ID, endedIDs[a.ID])
					}
				}
			}
			// A savepoint ends with its metadata written, silently: it is
			// not notified to the tasks.
			if w, ok := ev.(EvMetadataWritten); ok && w.Err == nil && kinds[w.ID] == KindSavepoint && written[w.ID] && endedIDs[w.ID] == "" &&
				!slices.ContainsFunc(c.Pending(), func(p PendingCheckpoint) bool { return p.ID == w.ID }) {
				endedIDs[w.ID] = "completed"
			}
			pendingCheckpoints := 0
			for _, p := range c.Pending() {
				if endedIDs[p.ID] != "" || kinds[p.ID] == 0 {
					t.Fatalf("pending %d is %q", p.ID, endedIDs[p.ID])
				}
				if p.Kind == KindCheckpoint {
					pendingCheckpoints++
				}
			}
			if pendingCheckpoints > max(cfg.MaxConcurrent, 1) {
				t.Fatalf("%d checkpoints pending, max %d", pendingCheckpoints, cfg.MaxConcurrent)
			}
			if len(c.Pending())+len(endedIDs) != len(kinds) {
				t.Fatalf("%d pending and %d ended of %d triggered", len(c.Pending()), len(endedIDs), len(kinds))
			}
		}
	})
}
