package minicluster

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/jobstore"
	"github.com/strom-dev/strom/internal/rest/resttest"
	"github.com/strom-dev/strom/internal/scheduler"
)

// A JobManager killed and started again serves its REST API on the same
// address over the new Dispatcher, which lists the job at once (from the
// job store); the recovered JobMaster restores the checkpoint completed
// before the kill, the job runs and checkpoints on, ids continuing, and
// a cancel through REST ends it for the handle the client got before
// the kill too.
func TestRESTOverARestartedJobManager(t *testing.T) {
	for _, networkRPC := range []bool{false, true} {
		t.Run(map[bool]string{false: "in-process", true: "network-rpc"}[networkRPC], func(t *testing.T) {
			store, err := jobstore.OpenDir(t.TempDir())
			require.NoError(t, err)
			mc, err := Start(Config{TaskManagers: 2, SlotsPerManager: 2, RESTAddress: "127.0.0.1:0", NetworkRPC: networkRPC,
				HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: time.Second, JobStore: store})
			require.NoError(t, err)
			defer mc.Close()
			url := mc.RESTURL()
			c := resttest.NewClient(t, url)
			h, err := mc.Submit(slowJob(t))
			require.NoError(t, err)
			base := "/jobs/" + h.ID()
			var before float64
			eventually(t, "a completed checkpoint", func() (bool, any) {
				cp := c.JSON("GET", base+"/checkpoints", nil, 200)
				before = num(cp["counts"].(map[string]any)["completed"])
				return before >= 1, cp["counts"]
			})
			require.NoError(t, mc.KillJobManager())
			_, err = http.Get(url + "/overview")
			require.Error(t, err, "no REST server while the JobManager is down")
			require.Error(t, mc.KillJobManager(), "killed already")
			require.NoError(t, mc.StartJobManager())
			require.Equal(t, url, mc.RESTURL(), "the same address")

			job := c.JSON("GET", base, nil, 200)
			require.Contains(t, []any{"RESTARTING", "CREATED", "RUNNING"}, job["state"])
			eventually(t, "the recovered job restored a checkpoint and completed a new one", func() (bool, any) {
				cp := c.JSON("GET", base+"/checkpoints", nil, 200)
				latest, _ := cp["latest"].(map[string]any)
				restored, _ := latest["restored"].(map[string]any)
				completed, _ := latest["completed"].(map[string]any)
				if restored == nil || completed == nil {
					return false, cp
				}
				return num(restored["id"]) >= before && num(completed["id"]) > num(restored["id"]), cp
			})
			require.Equal(t, "RUNNING", c.JSON("GET", base, nil, 200)["state"])
			_, execs := h.Status()
			for _, e := range execs {
				require.GreaterOrEqual(t, e.ID.Attempt, scheduler.AttemptBase(1), "the old handle follows the job")
			}

			c.JSON("PATCH", base+"?mode=cancel", nil, 202)
			r := wait(t, h)
			require.Equal(t, scheduler.JobCanceled, r.State)
			l, err := store.List()
			require.NoError(t, err)
			require.Empty(t, l, "the cancelled job left the store")
		})
	}
}
