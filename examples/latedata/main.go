// Command latedata shows what event-time windows do with late records.
// Sensors report readings; the job sums them per sensor in 10-second
// tumbling windows, expecting records at most 2 seconds out of order and
// allowing 5 more seconds of lateness:
//
//   - a record out of order by less than 2 seconds is simply on time;
//   - a record that arrives after its window fired, but within the allowed
//     lateness, fires the window again with the updated result;
//   - a record later than that is not dropped silently but sent to a side
//     output, printed separately.
//
// Run it with
//
//	go run ./examples/latedata
package main

import (
	"context"
	"fmt"
	"log"
	"sort"
	"time"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

type Reading struct {
	Sensor string
	Value  int
	TS     int64 // event time, epoch ms
}

type Sum struct {
	Sensor string
	Window window.TimeWindow
	N      int // readings in the window
	Total  int
	// LateUpdate: the window fired before, and a late record (within the
	// allowed lateness) fired it again.
	LateUpdate bool
}

const maxOutOfOrder = 2 * time.Second

// firingsDesc counts a window's firings in per-window state: the first is
// on time, later ones are late updates.
var firingsDesc = state.ValueDescriptor[int]{Name: "firings"}

func main() {
	env := strom.NewEnvironment(strom.Config{Parallelism: 2})

	readings := strom.FromSlice(env, []Reading{
		{"s1", 1, 1_000},
		{"s2", 10, 2_000},
		{"s1", 2, 4_000},
		{"s1", 3, 11_000},  // watermark 8.999s
		{"s1", 4, 9_000},   // out of order, but on time: [0s,10s) has not fired
		{"s2", 20, 13_000}, // watermark 10.999s: [0s,10s) fires
		{"s1", 5, 7_000},   // late, within the allowed lateness: [0s,10s) fires again
		{"s2", 30, 25_000}, // watermark 22.999s: [10s,20s) fires, [0s,10s) is cleaned up
		{"s1", 6, 8_000},   // too late: to the side output
		{"s2", 40, 18_000}, // late, within the allowed lateness: [10s,20s) fires again
	}).Parallelism(1)
	// One source subtask and one watermark generator see the records in
	// the order above; with several, which record is late would depend on
	// how their outputs interleave.
	// EmitPerRecord: a watermark after every record instead of every 200ms
	// of wall-clock time, so which records are late depends on the data
	// alone and the program prints the same on every run. AssignTimestamps
	// runs with its source's parallelism, in the source's task.
	timed := strom.AssignTimestamps(readings,
		strom.BoundedOutOfOrderness[Reading](maxOutOfOrder).EmitPerRecord().WithTimestamps(func(r Reading) int64 { return r.TS }))

	late := strom.NewOutputTag[Reading]("late")
	windowed := strom.Window(strom.KeyBy(timed, func(r Reading) string { return r.Sensor }), window.Tumbling(10*time.Second)).
		AllowedLateness(5 * time.Second).
		SideOutputLateData(late)
	sums := strom.WindowProcess(windowed, func(ctx *strom.WindowContext[string, Sum], rs []Reading) error {
		firings, err := state.GetValue(ctx.WindowState(), firingsDesc)
		if err != nil {
			return err
		}
		n, _ := firings.Value()
		firings.Update(n + 1)
		s := Sum{Sensor: ctx.Key(), Window: ctx.Window(), N: len(rs), LateUpdate: n > 0}
		for _, r := range rs {
			s.Total += r.Value
		}
		ctx.Collect(s)
		return nil
	})
	results := strom.Collect(sums)
	tooLate := strom.Collect(strom.SideOutput(sums, late))

	if _, err := env.Execute(context.Background(), "late data"); err != nil {
		log.Fatal(err)
	}

	// A window's firings only add records, so N orders them.
	all := results.Values()
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.Sensor != b.Sensor {
			return a.Sensor < b.Sensor
		}
		if a.Window != b.Window {
			return a.Window.Start < b.Window.Start
		}
		return a.N < b.N
	})
	fmt.Println("window sums:")
	for _, s := range all {
		note := ""
		if s.LateUpdate {
			note = " (late update)"
		}
		fmt.Printf("  %s [%v, %v) n=%d sum=%d%s\n", s.Sensor, ms(s.Window.Start), ms(s.Window.End), s.N, s.Total, note)
	}
	fmt.Println("too late for their window (side output):")
	lateReadings := tooLate.Values()
	sort.Slice(lateReadings, func(i, j int) bool { return lateReadings[i].TS < lateReadings[j].TS })
	for _, r := range lateReadings {
		fmt.Printf("  %s at %v value=%d\n", r.Sensor, ms(r.TS), r.Value)
	}
}

func ms(t int64) time.Duration { return time.Duration(t) * time.Millisecond }
