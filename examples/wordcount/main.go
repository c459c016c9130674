// Command wordcount counts words per 10-second event-time window: the
// README's minimal complete Strom program.
package main

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/window"
)

type Line struct {
	Text string
	TS   int64 // event time, epoch ms
}

type Count struct {
	Word string
	N    int
}

func main() {
	env := strom.NewEnvironment(strom.Config{Parallelism: 2})

	lines := strom.FromSlice(env, []Line{
		{"to be or not to be", 1_000},
		{"that is the question", 4_000},
		{"to sleep perchance to dream", 12_000},
	})
	timed := strom.AssignTimestamps(lines,
		strom.BoundedOutOfOrderness[Line](time.Second).WithTimestamps(func(l Line) int64 { return l.TS }))
	words := strom.FlatMap(timed, func(l Line, out strom.Collector[Count]) {
		for _, w := range strings.Fields(l.Text) {
			out.Collect(Count{w, 1})
		}
	})
	counts := strom.WindowReduce(
		strom.Window(strom.KeyBy(words, func(c Count) string { return c.Word }), window.Tumbling(10*time.Second)),
		func(a, b Count) Count { return Count{a.Word, a.N + b.N} })
	strom.Print(counts).Parallelism(1)

	if _, err := env.Execute(context.Background(), "windowed word count"); err != nil {
		log.Fatal(err)
	}
	fmt.Println("done")
}
