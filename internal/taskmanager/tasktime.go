package taskmanager

import (
	"time"

	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/runtime"
)

// timeWindow is the least span the busy/idle/back-pressured rates of a
// report cover: reports go out every MetricsInterval (50ms by default),
// far too short a span for a rate that means something (one wait for a
// buffer would read as a second of back-pressure).
const timeWindow = time.Second

// timeRates turns a task's time samples into per-second rates over a
// sliding window of one to two timeWindows: base is the sample the rates
// are measured from, mid the one that becomes base once a window has
// passed. Only the metrics reporter (the TaskManager's loop) uses it.
type timeRates struct {
	base, mid runtime.TimeSample
}

// add fills m's busy, idle and back-pressured rates from a sample of task
// taken now.
func (r *timeRates) add(m *rpc.TaskMetrics, task *runtime.Task, now time.Time) {
	cur := task.Times().Sample(now)
	m.BusyMsPerSecond, m.IdleMsPerSecond, m.BackPressuredMsPerSecond = runtime.Rates(r.base, cur)
	if r.mid.At.IsZero() {
		r.mid = cur
	} else if cur.Elapsed-r.mid.Elapsed >= timeWindow {
		r.base, r.mid = r.mid, cur
	}
}

// addWatermarks sets each operator's input watermark (chain order, as the
// counters are).
func addWatermarks(ops []rpc.OperatorMetrics, task *runtime.Task) {
	wms := task.Times().Watermarks()
	for i := range ops {
		ops[i].Watermark = runtime.MinWatermark
		if i < len(wms) {
			ops[i].Watermark = wms[i]
		}
	}
}
