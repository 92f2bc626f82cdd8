// Package utils holds the small value types and helpers shared by the jkframe
// packages and the agents: byte sizes and durations with a text form that
// round-trips exactly, random identifiers, and Semantic Versioning precedence.
//
// Byte sizes use binary units only: K, M, G, T and P are powers of 1024, with
// or without a trailing "B" or "iB", case-insensitive ("10M" = "10MB" =
// "10MiB" = 10 × 2²⁰ bytes). Durations are Go's time.ParseDuration forms plus
// "d" for 24 hours. See docs/architecture.md, section "Decisions".
package utils
