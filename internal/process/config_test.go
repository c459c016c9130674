package process_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/process"
)

// Settings that cannot work are refused before anything listens, with an
// error that says which.
func TestBadProcessConfigsAreRefused(t *testing.T) {
	_, err := process.StartJobManager(process.JobManagerConfig{RPCAddress: "127.0.0.1:0", RESTAddress: "127.0.0.1:0"})
	require.ErrorContains(t, err, "no directory")
	_, err = process.StartJobManager(process.JobManagerConfig{Dir: t.TempDir(), RPCAddress: "127.0.0.1:0", RESTAddress: "127.0.0.1:0", AdvertisedHost: "jm.example"})
	require.ErrorContains(t, err, "needs a fixed RPC port")
	_, err = process.StartJobManager(process.JobManagerConfig{Dir: t.TempDir(), RPCAddress: "not-an-address", RESTAddress: "127.0.0.1:0", AdvertisedHost: "jm.example"})
	require.ErrorContains(t, err, "not-an-address")

	_, err = process.StartTaskManager(process.TaskManagerConfig{Slots: 1})
	require.ErrorContains(t, err, "no JobManager address")
	_, err = process.StartTaskManager(process.TaskManagerConfig{JobManager: "127.0.0.1:1", Slots: 0})
	require.ErrorContains(t, err, "0 slots")
	_, err = process.StartTaskManager(process.TaskManagerConfig{JobManager: "127.0.0.1:1", Slots: 1, Dir: t.TempDir(), AdvertisedHost: "tm.example"})
	require.ErrorContains(t, err, "needs a fixed RPC port")
}
