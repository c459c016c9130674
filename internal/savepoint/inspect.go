package savepoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/statebackend"
)

// Summary describes a checkpoint or savepoint: what `strom savepoint
// inspect --json` prints.
type Summary struct {
	Location  string            `json:"location"`
	JobID     string            `json:"job_id"`
	ID        int64             `json:"id"`
	Kind      string            `json:"kind"` // CHECKPOINT or SAVEPOINT
	Triggered time.Time         `json:"triggered"`
	Completed time.Time         `json:"completed"`
	Operators []OperatorSummary `json:"operators"`
}

// OperatorSummary is one operator of a Summary.
type OperatorSummary struct {
	UID            string `json:"uid"`
	Name           string `json:"name"`
	Parallelism    int    `json:"parallelism"`
	MaxParallelism int    `json:"max_parallelism"`
	// FinishedSubtasks had finished when the snapshot was taken (they hold
	// no state).
	FinishedSubtasks int                    `json:"finished_subtasks"`
	KeyedStates      []KeyedStateSummary    `json:"keyed_states"`
	OperatorStates   []OperatorStateSummary `json:"operator_states"`
}

// KeyedStateSummary is one keyed state of an operator, over all subtasks.
type KeyedStateSummary struct {
	Name string `json:"name"`
	// Type is the type tag, e.g. value<string,int64>.
	Type string `json:"type"`
	// Schema is nil when the snapshot records none (see the package doc).
	Schema *statebackend.StateSchema `json:"schema,omitempty"`
	// Keys is the number of keys (for namespaced state, of key and
	// namespace pairs); nil for state kinds whose data does not say.
	Keys *int64 `json:"keys"`
	// Bytes is the size of the state's data, without framing.
	Bytes int64 `json:"bytes"`
}

// OperatorStateSummary is one operator-state list, over all subtasks.
type OperatorStateSummary struct {
	Name     string `json:"name"`
	Mode     string `json:"mode"` // "list" or "union list"
	Elements int    `json:"elements"`
	Bytes    int64  `json:"bytes"`
}

// Summarize reads every state file of the snapshot (checksums included)
// and describes it.
func (s *Snapshot) Summarize(ctx context.Context) (*Summary, error) {
	md := s.Metadata
	sum := &Summary{Location: s.Location, JobID: md.JobID, ID: int64(md.ID), Kind: md.Kind.String(),
		Triggered: md.Triggered, Completed: md.Completed, Operators: []OperatorSummary{}}
	for i := range md.Operators {
		op := &md.Operators[i]
		osum := OperatorSummary{UID: op.UID, Name: op.Name, Parallelism: op.Parallelism, MaxParallelism: op.MaxParallelism,
			KeyedStates: []KeyedStateSummary{}, OperatorStates: []OperatorStateSummary{}}
		keyed := map[string]int{} // name → index in osum.KeyedStates
		for _, st := range op.Subtasks {
			if st.Finished {
				osum.FinishedSubtasks++
			}
		}
		err := s.walk(ctx, op, func(_ checkpoint.SubtaskState, c *statebackend.SnapshotContents) error {
			for _, d := range c.States {
				if _, ok := keyed[d.Name]; !ok {
					keyed[d.Name] = len(osum.KeyedStates)
					zero := int64(0)
					osum.KeyedStates = append(osum.KeyedStates, KeyedStateSummary{Name: d.Name, Type: d.Type, Schema: d.Schema, Keys: &zero})
				}
				ks := &osum.KeyedStates[keyed[d.Name]]
				if ks.Schema == nil {
					ks.Schema = d.Schema
				}
			}
			for _, sec := range c.Sections {
				ks := &osum.KeyedStates[keyed[sec.State]]
				ks.Bytes += int64(len(sec.Data))
				if hasDelta(c, sec.State) {
					continue // counted below
				}
				if n, ok := sec.NumKeys(); ok && ks.Keys != nil {
					*ks.Keys += int64(n)
				} else {
					ks.Keys = nil
				}
			}
			for _, d := range c.States {
				if !hasDelta(c, d.Name) {
					continue
				}
				// An incremental chain: count the keys a restore would
				// see (a delta repeats keys and deletes some).
				ks := &osum.KeyedStates[keyed[d.Name]]
				n := int64(0)
				err := statebackend.MergedEntries(c, d, func(e statebackend.Entry) error {
					n++
					return nil
				})
				if err != nil || d.Schema == nil || ks.Keys == nil {
					ks.Keys = nil
					continue
				}
				*ks.Keys += n
			}
			return nil
		}, func(_ checkpoint.SubtaskState, lists []statebackend.OperatorState) error {
			for _, l := range lists {
				j := slices.IndexFunc(osum.OperatorStates, func(o OperatorStateSummary) bool { return o.Name == l.Name })
				if j < 0 {
					j = len(osum.OperatorStates)
					osum.OperatorStates = append(osum.OperatorStates, OperatorStateSummary{Name: l.Name, Mode: l.Mode.String()})
				}
				osum.OperatorStates[j].Elements += len(l.Elements)
				for _, e := range l.Elements {
					osum.OperatorStates[j].Bytes += int64(len(e))
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sum.Operators = append(sum.Operators, osum)
	}
	return sum, nil
}

// walk reads the state files of every subtask of op and passes each
// subtask's keyed-state streams to keyed and its operator-state lists to
// lists; either may be nil.
func (s *Snapshot) walk(ctx context.Context, op *checkpoint.OperatorState,
	keyed func(checkpoint.SubtaskState, *statebackend.SnapshotContents) error,
	lists func(checkpoint.SubtaskState, []statebackend.OperatorState) error) error {
	for _, st := range op.Subtasks {
		if keyed != nil {
			if err := s.eachKeyed(ctx, op, st, func(c *statebackend.SnapshotContents) error { return keyed(st, c) }); err != nil {
				return err
			}
		}
		if lists != nil {
			l, err := s.operatorLists(ctx, op, st)
			if err != nil {
				return err
			}
			if err := lists(st, l); err != nil {
				return err
			}
		}
	}
	return nil
}

// eachKeyed reads the keyed-state streams of one subtask: one stream, or
// an incremental checkpoint's chain (a base and its deltas), merged
// (statebackend.MergeChain).
func (s *Snapshot) eachKeyed(ctx context.Context, op *checkpoint.OperatorState, st checkpoint.SubtaskState, fn func(*statebackend.SnapshotContents) error) error {
	var chain []*statebackend.SnapshotContents
	for _, h := range st.Keyed {
		data, err := s.read(ctx, h)
		if err != nil {
			return fmt.Errorf("keyed state of operator %s subtask %d: %w", op.UID, st.Subtask, err)
		}
		c, err := statebackend.ReadSnapshotContents(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("keyed state of operator %s subtask %d (%s): %w", op.UID, st.Subtask, h.Path, err)
		}
		if len(chain) == 0 && c.Info.Delta || len(chain) > 0 && !c.Info.Delta {
			return fmt.Errorf("keyed state of operator %s subtask %d (%s): an incremental chain must be one base and its deltas", op.UID, st.Subtask, h.Path)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil
	}
	return fn(statebackend.MergeChain(chain))
}

// operatorLists reads the operator-state lists of one subtask.
func (s *Snapshot) operatorLists(ctx context.Context, op *checkpoint.OperatorState, st checkpoint.SubtaskState) ([]statebackend.OperatorState, error) {
	var out []statebackend.OperatorState
	for _, h := range st.Operator {
		data, err := s.read(ctx, h)
		if err != nil {
			return nil, fmt.Errorf("operator state of operator %s subtask %d: %w", op.UID, st.Subtask, err)
		}
		var lists []statebackend.OperatorState
		if err := json.Unmarshal(data, &lists); err != nil {
			return nil, fmt.Errorf("operator state of operator %s subtask %d (%s): corrupt: %w", op.UID, st.Subtask, h.Path, err)
		}
		out = append(out, lists...)
	}
	return out, nil
}

// Dump writes the entries of state name of operator uid to w as JSON
// lines, keyed state first looked up, then operator state:
//
//   - keyed state with a schema: one line per entry, as statebackend.Entry
//     splits them — per key for value, reducing and aggregating state
//     (the aggregating accumulator), per element for list state (in list
//     order), per map entry for map state, per key and namespace for
//     namespaced state:
//     {"key_group":3,"key":…,"namespace":…,"map_key":…,"value":…,"expiry":…}
//     namespace and map_key only where the kind has them; expiry (TTL,
//     epoch ms) only when set. Values are decoded with the recorded schema
//     (codec.DecodeDynamic: structs as objects by field name, bytes and
//     self-encoding types as base64, JSON-codec values as the JSON).
//   - keyed state without a schema: one line per key group,
//     {"key_group":3,"keys":12,"raw":"<base64 of the state's data>"}.
//   - an operator-state list: one line per element,
//     {"subtask":0,"element":"<base64>"} (elements carry no schema).
//
// Lines of keyed state come in subtask order, then key-group order, then
// the order of the snapshot.
func (s *Snapshot) Dump(ctx context.Context, uid, name string, w io.Writer) error {
	op, err := s.Operator(uid)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	found := false
	err = s.walk(ctx, op, func(_ checkpoint.SubtaskState, c *statebackend.SnapshotContents) error {
		i := slices.IndexFunc(c.States, func(d statebackend.StateDesc) bool { return d.Name == name })
		if i < 0 {
			return nil
		}
		found = true
		return dumpKeyed(c, c.States[i], enc)
	}, nil)
	if err != nil || found {
		return err
	}
	err = s.walk(ctx, op, nil, func(st checkpoint.SubtaskState, lists []statebackend.OperatorState) error {
		for _, l := range lists {
			if l.Name != name {
				continue
			}
			found = true
			for _, e := range l.Elements {
				if err := enc.Encode(map[string]any{"subtask": st.Subtask, "element": e}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !found {
		names, err := s.stateNames(ctx, op)
		if err != nil {
			return err
		}
		return fmt.Errorf("%w %q in operator %s (states: %s)", ErrUnknownState, name, uid, strings.Join(names, ", "))
	}
	return nil
}

func dumpKeyed(c *statebackend.SnapshotContents, d statebackend.StateDesc, enc *json.Encoder) error {
	if d.Schema != nil && hasDelta(c, d.Name) {
		// An incremental checkpoint's chain: the entries a restore would
		// see, not each file's.
		err := statebackend.MergedEntries(c, d, func(e statebackend.Entry) error { return encodeEntry(d, e, enc) })
		if !errors.Is(err, statebackend.ErrNoEntries) {
			return err
		}
	}
	for _, sec := range c.Sections {
		if sec.State != d.Name {
			continue
		}
		if d.Schema == nil {
			line := map[string]any{"key_group": sec.KeyGroup, "raw": sec.Data}
			if n, ok := sec.NumKeys(); ok {
				line["keys"] = n
			}
			if sec.Delta {
				// An incremental checkpoint's changes since the line
				// before of this key group (entries, then deleted keys).
				line["delta"] = true
			}
			if err := enc.Encode(line); err != nil {
				return err
			}
			continue
		}
		err := sec.Entries(d.Schema, func(e statebackend.Entry) error { return encodeEntry(d, e, enc) })
		if errors.Is(err, statebackend.ErrNoEntries) {
			// A codec without a schema: the key group's data as it is.
			err = enc.Encode(map[string]any{"key_group": sec.KeyGroup, "raw": sec.Data, "error": err.Error()})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// hasDelta says whether state name has delta sections in c.
func hasDelta(c *statebackend.SnapshotContents, name string) bool {
	return slices.ContainsFunc(c.Sections, func(s statebackend.Section) bool { return s.State == name && s.Delta })
}

// encodeEntry writes one entry as a JSON line, decoded with d's schema.
func encodeEntry(d statebackend.StateDesc, e statebackend.Entry, enc *json.Encoder) error {
	line := map[string]any{"key_group": e.KeyGroup}
	for _, f := range []struct {
		name string
		sc   *codec.Schema
		b    []byte
	}{{"key", d.Schema.Key, e.Key}, {"namespace", d.Schema.Namespace, e.Namespace}, {"map_key", d.Schema.MapKey, e.MapKey}, {"value", d.Schema.Value, e.Value}} {
		if f.sc == nil {
			continue
		}
		v, _, err := codec.DecodeDynamic(f.sc, f.b)
		if err != nil {
			return fmt.Errorf("state %q, key group %d, %s: %w", d.Name, e.KeyGroup, f.name, err)
		}
		line[f.name] = v
	}
	if e.Expiry != 0 {
		line["expiry"] = e.Expiry
	}
	return enc.Encode(line)
}

// stateNames lists the keyed and operator states of op, for errors.
func (s *Snapshot) stateNames(ctx context.Context, op *checkpoint.OperatorState) ([]string, error) {
	var names []string
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	err := s.walk(ctx, op, func(_ checkpoint.SubtaskState, c *statebackend.SnapshotContents) error {
		for _, d := range c.States {
			add(d.Name)
		}
		return nil
	}, func(_ checkpoint.SubtaskState, lists []statebackend.OperatorState) error {
		for _, l := range lists {
			add(l.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return []string{"none"}, nil
	}
	return names, nil
}
