//go:build race

package nexmark_test

// raceEnabled: the race detector slows the engine about tenfold, so the reference
// comparisons run on fewer events.
const raceEnabled = true
