package strom

import (
	"fmt"
	"time"
)

func errorf(format string, args ...any) error { return fmt.Errorf("strom: "+format, args...) }

// wholeMillis converts d to epoch milliseconds, the unit of event time, and
// records a construction error when d has a sub-millisecond part: silently
// truncating 1.5ms to 1ms would change which records count as late.
func wholeMillis(env *Environment, what string, d time.Duration) int64 {
	if d%time.Millisecond != 0 && env != nil {
		env.fail(errorf("%s %v is not a whole number of milliseconds", what, d))
	}
	return d.Milliseconds()
}
