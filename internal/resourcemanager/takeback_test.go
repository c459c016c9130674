package resourcemanager

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// A slot request of a job that still holds slots comes from a new
// JobMaster of it (the one that held them died without releasing them):
// the job's slots are taken back and granted to the new request, while
// another job's slots stay its own.
func TestRequestOfAJobHoldingSlotsTakesThemBack(t *testing.T) {
	rm, jm := start(t, 2)
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "a", RequestID: 1, N: 1, JobMaster: "jm"}))
	require.IsType(t, rpc.SlotsGranted{}, next(t, jm))
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "b", RequestID: 1, N: 1, JobMaster: "jm"}))
	require.Equal(t, rpc.SlotsGranted{JobID: "b", RequestID: 1, Slots: []rpc.SlotOffer{
		{Slot: scheduler.SlotID{TaskManager: "tm-1", Index: 1}, Address: "taskmanager-tm-1"}}}, next(t, jm))

	// Job a's JobMaster died; its successor asks: it gets a's slot.
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "a", RequestID: 1, N: 1, JobMaster: "jm"}))
	require.Equal(t, rpc.SlotsGranted{JobID: "a", RequestID: 1, Slots: []rpc.SlotOffer{
		{Slot: scheduler.SlotID{TaskManager: "tm-1", Index: 0}, Address: "taskmanager-tm-1"}}}, next(t, jm))

	// Job c finds no free slot: b's was not taken back for a.
	require.NoError(t, rm.RequestSlots(rpc.RequestSlots{JobID: "c", RequestID: 1, N: 1, JobMaster: "jm"}))
	requireQuiet(t, jm)
}
