package nexmark

// Test-only access to internals.
var RunBaselineEvents = runBaselineEvents

// Internal constants the tests check the generator against.
const (
	PersonIDLead  = personIDLead
	AuctionIDLead = auctionIDLead
)

// SetPendingSweepMin makes q4/q9 sweep their pending bids more often; it returns a
// function restoring the previous value. Not for parallel tests.
func SetPendingSweepMin(n int) (restore func()) {
	old := pendingSweepMin
	pendingSweepMin = n
	return func() { pendingSweepMin = old }
}
