//go:build race

package pipeline

// raceEnabled: the race detector slows the simulated month tenfold, so
// make test (which runs -race) simulates a smaller population.
const raceEnabled = true
