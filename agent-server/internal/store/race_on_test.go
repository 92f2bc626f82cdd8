//go:build race

package store

// raceEnabled: the race detector slows pure-Go SQLite by an order of
// magnitude, so timing assertions are off.
const raceEnabled = true
