package datagen_test

import (
	"context"
	"fmt"
	"slices"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
)

// Generate the first five squares; with parallelism 2, subtask 0 makes
// indices 0, 2, 4 and subtask 1 makes 1, 3.
func ExampleFromGenerator() {
	env := strom.NewEnvironment(strom.Config{Parallelism: 2})
	squares := strom.Collect(datagen.FromGenerator(env, func(i int64) int64 { return i * i }, datagen.Count(5)))
	if _, err := env.Execute(context.Background(), "squares"); err != nil {
		fmt.Println(err)
		return
	}
	got := squares.Values()
	slices.Sort(got)
	fmt.Println(got)
	// Output: [0 1 4 9 16]
}

// SourceWith gives every reader its own generator function, which may then
// keep state without locks: here a buffer the records are formatted into.
func ExampleSourceWith() {
	src := datagen.SourceWith(func() func(i int64) string {
		var buf []byte
		return func(i int64) string {
			buf = fmt.Appendf(buf[:0], "event-%03d", i)
			return string(buf)
		}
	}, datagen.Count(3))
	env := strom.NewEnvironment()
	events := strom.Collect(strom.FromSource(env, src, "Events"))
	if _, err := env.Execute(context.Background(), "events"); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(events.Values())
	// Output: [event-000 event-001 event-002]
}
