package rpc

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The in-process transport delivers in order without ever blocking the
// sender, and a send to an address nobody listens on (or no longer does)
// fails with ErrUnreachable.
func TestLocalTransport(t *testing.T) {
	l := NewLocal()
	ep, err := l.Listen("tm")
	require.NoError(t, err)
	_, err = l.Listen("tm")
	require.ErrorContains(t, err, "in use")

	tm := l.TaskManager("tm")
	for i := range 1000 { // far more than any channel buffer: nobody reads yet
		require.NoError(t, tm.CancelTask(CancelTask{JobID: "j", Execution: exec}))
		if i == 0 {
			require.NoError(t, tm.DeployTask(DeployTask{JobID: "first"}))
		}
	}
	<-ep.Ready()
	got := ep.Receive()
	require.Len(t, got, 1001)
	require.Equal(t, CancelTask{JobID: "j", Execution: exec}, got[0])
	require.Equal(t, DeployTask{JobID: "first"}, got[1])
	require.Empty(t, ep.Receive())

	require.ErrorIs(t, l.JobMaster("nobody").CancelJob(CancelJob{}), ErrUnreachable)
	ep.Close()
	require.ErrorIs(t, tm.CancelTask(CancelTask{}), ErrUnreachable)
	_, err = l.Listen("tm") // the address is free again
	require.NoError(t, err)
}
