package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/strom-dev/strom/internal/statebackend"
)

// Incremental checkpoints of keyed state.
//
// With Context.IncrementalCheckpoints a checkpoint writes, per operator
// with keyed state, either a base (the whole state) or a delta (what
// changed since the operator's previous checkpoint: see
// statebackend/incremental.go), and acknowledges the chain of files a
// restore needs: the base and every delta since, in order. The chain lives
// on the Context (one per operator subtask attempt; a restored attempt
// starts with a base) and the files are the checkpoint storage's shared
// files, reference-counted by the completed-checkpoint store, so a file
// stays while any retained checkpoint needs it.
//
// The chain decides the next snapshot's mode on the task goroutine; the
// uploader, on its own goroutine, finishes links as their files land. A
// delta is only as good as every link before it: a link waits for them
// (Files) and fails with the first failure, and a failed upload makes the
// next snapshot a base. A new base is also taken once the chain's files
// together are more than DeltaRatio+1 times what a base would be now, so
// a restore reads at most about that much, or after MaxChainDeltas
// deltas. What a base would be now is estimated from the last base, scaled
// by how the number of entries changed since (statebackend's
// Keyed.Entries): a state that only grows (windows filling up, new keys)
// keeps its chain, whose deltas are all live data, where a rule against
// the base's size alone re-encoded the whole state every few checkpoints
// (q8 paid a third of its checkpoint cost so); a state whose entries
// change in place starts a new base once the superseded data in the chain
// outweighs the state DeltaRatio times. Without counts (a state that
// cannot count), the estimate is the base itself.

// MaxChainDeltas bounds the deltas after one base; DeltaRatio is how many
// times the live state the chain may carry beyond it.
const (
	MaxChainDeltas = 50
	DeltaRatio     = 2
)

// keyedChain is one operator's chain.
type keyedChain struct {
	mu     sync.Mutex
	links  []*KeyedLink // base first
	broken bool
	// baseSize and deltaSize are the landed files' sizes.
	baseSize, deltaSize int64
	// baseEntries is the state's entry count when the base was taken;
	// counted says there was one.
	baseEntries int
	counted     bool
	// lastDelta is the last landed delta's size.
	lastDelta int64
}

// KeyedLink is one checkpoint's keyed-state file in an incremental chain.
type KeyedLink struct {
	chain *keyedChain
	// Delta says the file is a delta (else it is a new base).
	Delta bool
	prev  []*KeyedLink
	done  chan struct{}
	// finished is set (under the chain's lock) by the first Finish.
	finished bool
	file     KeyedFile
	err      error
}

// KeyedFile is a landed file of a chain.
type KeyedFile struct {
	Path string
	Size int64
}

// mode is the next snapshot's mode; entries is the state's entry count
// now, if counted. sizeHint is the file's expected size (0: no idea), so
// its buffer is allocated once: a buffer doubling its way to a base's
// size left as much garbage again.
func (c *keyedChain) mode(entries int, counted bool) (mode statebackend.SnapshotMode, sizeHint int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	live := float64(c.baseSize)
	if counted && c.counted && c.baseEntries > 0 {
		live *= float64(entries) / float64(c.baseEntries)
	}
	if c.broken || len(c.links) == 0 || len(c.links) > MaxChainDeltas ||
		float64(c.baseSize+c.deltaSize) > (DeltaRatio+1)*live {
		return statebackend.SnapshotBase, int(live)
	}
	return statebackend.SnapshotDelta, int(c.lastDelta)
}

// add appends the link of a snapshot just taken, with the state's entry
// count at that moment.
func (c *keyedChain) add(delta bool, entries int, counted bool) *KeyedLink {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := &KeyedLink{chain: c, Delta: delta, done: make(chan struct{})}
	if !delta {
		c.links, c.broken, c.baseSize, c.deltaSize, c.lastDelta = nil, false, 0, 0, 0
		c.baseEntries, c.counted = entries, counted
	}
	l.prev = append([]*KeyedLink(nil), c.links...)
	c.links = append(c.links, l)
	return l
}

// Finish records where the link's file landed, or why it did not. Calls
// after the first do nothing.
func (l *KeyedLink) Finish(file KeyedFile, err error) {
	c := l.chain
	c.mu.Lock()
	if l.finished {
		c.mu.Unlock()
		return
	}
	l.finished = true
	current := slices.Contains(c.links, l)
	switch {
	case !current:
	case err != nil:
		c.broken = true
	case l.Delta:
		c.deltaSize += file.Size
		c.lastDelta = file.Size
	default:
		c.baseSize = file.Size
	}
	c.mu.Unlock()
	l.file, l.err = file, err
	close(l.done)
}

// ErrChainBroken is wrapped by Files' error when an earlier link of the
// chain failed.
var ErrChainBroken = errors.New("an earlier file of the incremental chain was not written")

// Files waits for the links before l and returns the chain's files up to
// and including l, base first. l must have been finished.
func (l *KeyedLink) Files(ctx context.Context) ([]KeyedFile, error) {
	out := make([]KeyedFile, 0, len(l.prev)+1)
	for _, p := range l.prev {
		select {
		case <-p.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if p.err != nil {
			return nil, fmt.Errorf("%w: %v", ErrChainBroken, p.err)
		}
		out = append(out, p.file)
	}
	select {
	case <-l.done:
	default:
		return nil, errors.New("keyed chain: Files before Finish")
	}
	if l.err != nil {
		return nil, l.err
	}
	return append(out, l.file), nil
}

// AbandonLinks finishes, with err, the chain links of a snapshot that will
// not be uploaded (it failed in part, or was declined): the chain's next
// snapshot is then a base, and later links do not wait for these.
func (s *TaskSnapshot) AbandonLinks(err error) {
	if err == nil {
		err = errors.New("snapshot abandoned")
	}
	for i := range s.Operators {
		if l := s.Operators[i].KeyedLink; l != nil {
			s.Operators[i].KeyedLink = nil
			l.Finish(KeyedFile{}, err)
		}
	}
}
