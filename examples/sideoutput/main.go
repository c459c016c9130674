// Command sideoutput splits one stream into several with side outputs.
// A process function parses raw sensor lines ("sensor,celsius"): readings
// go to its main output, lines it cannot parse go to a "malformed" side
// output of another type, together with the reason, and readings above
// 50°C also go to an "overheating" side output. The program prints all
// three streams.
//
// Run it with
//
//	go run ./examples/sideoutput
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sort"
	"strconv"
	"strings"

	"github.com/strom-dev/strom"
)

type Reading struct {
	Sensor  string
	Celsius float64
}

type Malformed struct {
	Line   string
	Reason string
}

const overheating = 50.0

var (
	malformedTag   = strom.NewOutputTag[Malformed]("malformed")
	overheatingTag = strom.NewOutputTag[Reading]("overheating")
)

func parse(line string) (Reading, error) {
	sensor, celsius, ok := strings.Cut(line, ",")
	if !ok || sensor == "" {
		return Reading{}, errors.New(`want "sensor,celsius"`)
	}
	c, err := strconv.ParseFloat(celsius, 64)
	if err != nil {
		return Reading{}, fmt.Errorf("bad temperature %q", celsius)
	}
	return Reading{sensor, c}, nil
}

func main() {
	env := strom.NewEnvironment(strom.Config{Parallelism: 2})

	lines := strom.FromElements(env,
		"s1,21.5", "s2,19.0", "garbage", "s1,abc", "s3,88.2",
		"s2,", ",20.0", "s1,22.0", "s3,91.5", "s2,18.5")
	readings := strom.ProcessFunc(lines, func(ctx *strom.ProcessContext[Reading], line string) error {
		r, err := parse(line)
		if err != nil {
			// Not an error of the job: route the line aside and go on.
			malformedTag.Emit(ctx, Malformed{line, err.Error()})
			return nil
		}
		if r.Celsius > overheating {
			overheatingTag.Emit(ctx, r)
		}
		ctx.Collect(r)
		return nil
	})
	valid := strom.Collect(readings)
	malformed := strom.Collect(strom.SideOutput(readings, malformedTag))
	hot := strom.Collect(strom.SideOutput(readings, overheatingTag))

	if _, err := env.Execute(context.Background(), "side outputs"); err != nil {
		log.Fatal(err)
	}

	fmt.Println("readings:")
	printReadings(valid.Values())
	fmt.Println("overheating:")
	printReadings(hot.Values())
	fmt.Println("malformed:")
	bad := malformed.Values()
	sort.Slice(bad, func(i, j int) bool { return bad[i].Line < bad[j].Line })
	for _, m := range bad {
		fmt.Printf("  %q: %s\n", m.Line, m.Reason)
	}
}

// printReadings prints readings by sensor, then temperature: the
// subtasks' outputs interleave in no particular order.
func printReadings(rs []Reading) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Sensor != rs[j].Sensor {
			return rs[i].Sensor < rs[j].Sensor
		}
		return rs[i].Celsius < rs[j].Celsius
	})
	for _, r := range rs {
		fmt.Printf("  %s %.1f°C\n", r.Sensor, r.Celsius)
	}
}
