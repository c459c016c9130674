package statebackend

// SetMapLogFirstCheck lowers the log length at which a map state's key
// group is first checked for a log that outgrew it (tests of that path),
// and returns a func that restores it.
func SetMapLogFirstCheck(n int) func() {
	old := mapLogFirstCheck
	mapLogFirstCheck = n
	return func() { mapLogFirstCheck = old }
}
