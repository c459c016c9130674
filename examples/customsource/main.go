// Command customsource implements a connector: a strom.Source that stands
// for a partitioned log (as a Kafka topic) with one split per partition,
// and a strom.SourceReader that reads the splits assigned to its subtask a
// batch at a time, round robin, keeping each split's offset so Snapshot can
// report where it would resume. The job reads 5 partitions at parallelism 2
// and prints, per partition, which subtask read it, how many records it
// read and their sum, after checking that no record was read twice.
//
// Run it with
//
//	go run ./examples/customsource
package main

import (
	"context"
	"fmt"
	"log"
	"maps"
	"slices"

	"github.com/strom-dev/strom"
)

// Record is one entry of a partition.
type Record struct {
	Partition int
	Offset    int64
	Value     int64
	Subtask   int // the source subtask that read it
}

// logSource is a partitioned log of Partitions partitions holding
// PerPartition records each.
type logSource struct {
	Partitions   int
	PerPartition int64
}

var _ strom.Source[Record] = logSource{}

// partitionSplit is one partition and the offset of its next record.
type partitionSplit struct {
	Partition int
	Offset    int64
}

func (s *partitionSplit) SplitID() string { return fmt.Sprintf("partition-%d", s.Partition) }

// Splits lists one split per partition, from its start. Split i is read by
// subtask i mod parallelism.
func (s logSource) Splits(parallelism int) ([]strom.Split, error) {
	splits := make([]strom.Split, s.Partitions)
	for p := range splits {
		splits[p] = &partitionSplit{Partition: p}
	}
	return splits, nil
}

func (s logSource) NewReader(ctx strom.SourceContext, splits []strom.Split) (strom.SourceReader[Record], error) {
	r := &logReader{ctx: ctx.Context, subtask: ctx.Subtask, end: s.PerPartition}
	for _, sp := range splits {
		c := *sp.(*partitionSplit) // the reader advances its own copy
		r.splits = append(r.splits, &c)
	}
	return r, nil
}

func (s logSource) Bounded() bool { return true }

// logReader reads its subtask's splits.
type logReader struct {
	ctx     context.Context
	subtask int
	end     int64
	splits  []*partitionSplit // unfinished, the next one to read first
}

const batchSize = 64

func (r *logReader) Read(out strom.SourceOutput[Record]) (strom.ReadStatus, error) {
	if len(r.splits) == 0 {
		return strom.ReadStatus{Done: true}, nil
	}
	sp := r.splits[0]
	values, err := fetch(r.ctx, sp.Partition, sp.Offset, min(batchSize, r.end-sp.Offset))
	if err != nil {
		return strom.ReadStatus{}, err
	}
	for _, v := range values {
		out.Collect(Record{Partition: sp.Partition, Offset: sp.Offset, Value: v, Subtask: r.subtask})
		sp.Offset++
	}
	r.splits = r.splits[1:]
	if sp.Offset < r.end {
		r.splits = append(r.splits, sp) // round robin over the partitions
	}
	return strom.ReadStatus{}, nil
}

// Snapshot reports the unfinished splits at their current offsets: where a
// restarted reader would resume.
func (r *logReader) Snapshot() ([]strom.Split, error) {
	splits := make([]strom.Split, len(r.splits))
	for i, sp := range r.splits {
		c := *sp
		splits[i] = &c
	}
	return splits, nil
}

func (r *logReader) Close() error { return nil }

// fetch stands for the call a real connector blocks in (a request to a
// broker, a read from a file): it takes the subtask's context so that a
// cancelled job does not wait for it. Partition p holds (p+1)·1, (p+1)·2, …
func fetch(ctx context.Context, partition int, from, n int64) ([]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	values := make([]int64, n)
	for i := range values {
		values[i] = int64(partition+1) * (from + int64(i) + 1)
	}
	return values, nil
}

func main() {
	env := strom.NewEnvironment(strom.Config{Parallelism: 2})

	records := strom.FromSource(env, logSource{Partitions: 5, PerPartition: 200}, "log source")
	out := strom.Collect(records)

	if _, err := env.Execute(context.Background(), "custom source"); err != nil {
		log.Fatal(err)
	}

	type summary struct {
		records int
		sum     int64
		subtask int
	}
	parts := map[int]*summary{}
	read := map[[2]int64]bool{} // partition, offset
	for _, r := range out.Values() {
		at := [2]int64{int64(r.Partition), r.Offset}
		if read[at] {
			log.Fatalf("partition %d, offset %d read twice", r.Partition, r.Offset)
		}
		read[at] = true
		s := parts[r.Partition]
		if s == nil {
			s = &summary{subtask: r.Subtask}
			parts[r.Partition] = s
		} else if s.subtask != r.Subtask {
			log.Fatalf("partition %d read by subtasks %d and %d", r.Partition, s.subtask, r.Subtask)
		}
		s.records++
		s.sum += r.Value
	}
	for _, p := range slices.Sorted(maps.Keys(parts)) {
		s := parts[p]
		fmt.Printf("partition %d: read by subtask %d, %d records, sum %d\n", p, s.subtask, s.records, s.sum)
	}
}
