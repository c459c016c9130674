// Command clijob is the job binary of the CLI's tests: a tiny Strom job
// that runs embedded, submits itself (STROM_CLUSTER or --cluster), or
// prints its plan (STROM_PRINT_PLAN=1), like any user's job binary.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/strom-dev/strom"
)

func main() {
	// How a program offers "--cluster URL": its own flag, copied into
	// Config.Cluster (strom parses no flag of the program's).
	cluster := flag.String("cluster", "", "REST address of a Strom cluster to submit to")
	n := flag.Int("n", 3, "how many numbers")
	p := flag.Int("p", 2, "parallelism of the map")
	flag.Parse()
	fmt.Println("clijob: building the job") // output before the plan must not confuse strom info

	env := strom.NewEnvironment(strom.Config{Cluster: *cluster})
	nums := make([]int, *n)
	for i := range nums {
		nums[i] = i
	}
	doubled := strom.Map(strom.FromSlice(env, nums), func(v int) int { return 2 * v }).Name("Double").UID("double").Parallelism(*p)
	strom.Discard(doubled)
	res, err := env.Execute(context.Background(), "clijob")
	if err != nil {
		fmt.Fprintln(os.Stderr, "clijob:", err)
		os.Exit(1)
	}
	fmt.Printf("clijob: job %s finished in %v\n", res.JobID, res.Duration)
}
