package resourcemanager

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/resourcemanager/provider"
)

// epoch is time 0 of the scripts; times print as the time since.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestWorkers runs the scripts in testdata/workers_*.txt: each command is
// an input to workers or a question to it, and the expected output is its
// answer, then its books. Rewrite the expected output with
//
//	go test ./internal/resourcemanager -run TestWorkers -rewrite
//
// and then read every changed line.
//
// Commands (W is a worker id, D a duration since the epoch):
//
//	new [slots=N] [idle-timeout=D] [retry-delay=D]  empty books (defaults 1, 30s, 3s)
//	request need=N free=N at=D     toRequest: how many workers to ask for
//	requested asked=N [ids=W,W] at=D  the provider's answer
//	registered W                   its TaskManager registered
//	lost W                         its TaskManager was dropped
//	stopped W                      WorkerStopped
//	slots W free|busy at=D         its slots are all free, or not
//	release at=D [waiting]         toRelease
//	released W / release-failed W at=D
//	next at=D [waiting]
func TestWorkers(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "workers_*.txt"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var ws *workers
			datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
				var out strings.Builder
				at := func() time.Time {
					var dur time.Duration
					d.ScanArgs(t, "at", &dur)
					return epoch.Add(dur)
				}
				id := func() string {
					if len(d.CmdArgs) == 0 || len(d.CmdArgs[0].Vals) != 0 {
						d.Fatalf(t, "%s needs a worker id first", d.Cmd)
					}
					return d.CmdArgs[0].Key
				}
				if d.Cmd == "new" {
					slots, idle, retry := 1, DefaultIdleTimeout, DefaultProviderRetryDelay
					d.MaybeScanArgs(t, "slots", &slots)
					d.MaybeScanArgs(t, "idle-timeout", &idle)
					d.MaybeScanArgs(t, "retry-delay", &retry)
					ws = newWorkers(slots, idle, retry)
					return "ok\n"
				}
				if ws == nil {
					d.Fatalf(t, "%s before new", d.Cmd)
				}
				switch d.Cmd {
				case "request":
					var need, free int
					d.ScanArgs(t, "need", &need)
					d.ScanArgs(t, "free", &free)
					fmt.Fprintf(&out, "> ask %d\n", ws.toRequest(at(), need, free))
				case "requested":
					var asked int
					d.ScanArgs(t, "asked", &asked)
					var wids []provider.WorkerID
					if arg, ok := d.Arg("ids"); ok {
						for _, v := range arg.Vals {
							for _, id := range strings.Split(v, ",") {
								wids = append(wids, provider.WorkerID(id))
							}
						}
					}
					ws.requested(at(), asked, wids)
				case "registered":
					ws.registered(id())
				case "lost":
					ws.lost(id())
				case "stopped":
					fmt.Fprintf(&out, "> was registered: %v\n", ws.stopped(provider.WorkerID(id())))
				case "slots":
					ws.slots(at(), id(), d.HasArg("free"))
				case "release":
					fmt.Fprintf(&out, "> release %v\n", ws.toRelease(at(), d.HasArg("waiting")))
				case "released":
					ws.released(provider.WorkerID(id()))
				case "release-failed":
					ws.releaseFailed(at(), provider.WorkerID(id()))
				case "next":
					if n := ws.next(at(), d.HasArg("waiting")); n.IsZero() {
						out.WriteString("> next none\n")
					} else {
						fmt.Fprintf(&out, "> next %v\n", n.Sub(epoch))
					}
				default:
					d.Fatalf(t, "unknown command %q", d.Cmd)
				}
				printWorkers(&out, ws)
				return out.String()
			})
		})
	}
}

func printWorkers(out *strings.Builder, ws *workers) {
	fmt.Fprintf(out, "pending=%d", ws.pending())
	if !ws.retryAt.IsZero() {
		fmt.Fprintf(out, " retry-at=%v", ws.retryAt.Sub(epoch))
	}
	out.WriteString("\n")
	ids := make([]provider.WorkerID, 0, len(ws.byID))
	for id := range ws.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		w := ws.byID[id]
		fmt.Fprintf(out, "  %s %v", id, w.state)
		if !w.idleSince.IsZero() {
			fmt.Fprintf(out, " idle-since=%v", w.idleSince.Sub(epoch))
		}
		out.WriteString("\n")
	}
}
