//go:build !race

package e2e

const tasksRace = false
