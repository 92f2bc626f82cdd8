//go:build race

package e2e

// tasksRace: the race detector slows SQLite tenfold; scale tests shrink.
const tasksRace = true
