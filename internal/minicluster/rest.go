package minicluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	goruntime "runtime"
	"slices"
	"time"

	"github.com/strom-dev/strom/internal/dispatcher"
	"github.com/strom-dev/strom/internal/rest"
)

// tmInfo is a TaskManager this cluster started, for GET /taskmanagers.
type tmInfo struct {
	id, address string
	slots       int
}

// startREST serves the REST API over the Dispatcher on cfg.RESTAddress.
// The embedded cluster runs only jobs whose code is in this process, so
// job binaries can be uploaded and planned (cfg.BinaryDir) but not run.
func (c *MiniCluster) startREST(cfg Config) error {
	rc := dispatcher.RESTConfig{SavepointDir: cfg.SavepointDir, TaskManagers: c.restTaskManagers}
	if cfg.BinaryDir != "" {
		store, err := dispatcher.NewDirStore(cfg.BinaryDir, cfg.MaxBinaryBytes)
		if err != nil {
			return err
		}
		rc.Binaries = store
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	addr := cfg.RESTAddress
	if c.restAddr != "" {
		addr = c.restAddr // a restarted JobManager's: where clients know it
	}
	srv, err := rest.NewServer(rest.Config{Addr: addr, Cluster: c.dispatcher().REST(rc), MaxUploadBytes: cfg.MaxBinaryBytes, Logger: logger})
	if err != nil {
		return fmt.Errorf("embedded cluster: %w", err)
	}
	c.rest = srv
	if u, err := url.Parse(srv.URL()); err == nil {
		c.restAddr = u.Host
	}
	return nil
}

// RESTURL is the base URL of the cluster's REST API ("" without one).
func (c *MiniCluster) RESTURL() string {
	if c.rest == nil {
		return ""
	}
	return c.rest.URL()
}

// closeREST stops the REST server first, so no request reaches roles that
// are stopping.
func (c *MiniCluster) closeREST() {
	if c.rest != nil {
		if err := c.rest.Close(); err != nil {
			slog.Default().Warn("embedded cluster: closing REST", "error", err)
		}
		c.rest = nil
	}
}

// restTaskManagers describes the TaskManagers: they share this process, so
// memory is the process's.
func (c *MiniCluster) restTaskManagers(ctx context.Context) ([]rest.TaskManager, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	used := map[string]int{}
	if disp := c.dispatcher(); disp != nil {
		used = disp.SlotsInUse()
	}
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	now := time.Now()
	c.pmu.Lock() // StartTaskManager appends
	tms := slices.Clone(c.restTMs)
	c.pmu.Unlock()
	out := make([]rest.TaskManager, 0, len(tms))
	for _, tm := range tms {
		out = append(out, rest.TaskManager{
			ID: dispatcher.TaskManagerID(tm.id), Path: tm.address, LastHeartbeat: now,
			Slots: tm.slots, FreeSlots: max(tm.slots-used[tm.id], 0), CPUCores: goruntime.NumCPU(),
			HeapUsed: int64(ms.HeapAlloc), HeapCommitted: int64(ms.HeapSys), HeapMax: -1,
			PhysicalMemory: int64(ms.Sys), FreeMemory: int64(ms.Sys - ms.HeapAlloc), AllocatedSlots: []string{},
		})
	}
	return out, nil
}
