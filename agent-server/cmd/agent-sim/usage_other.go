//go:build !linux

package main

import "time"

// processUsage is not implemented here: RSS -1, CPU 0.
func processUsage() (rss int64, cpu time.Duration) { return -1, 0 }
