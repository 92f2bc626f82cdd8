// Package files is the exec-agent's file side: directory listings, uploads
// written atomically into place, and downloads streamed from disk.
//
// # Paths
//
// The agent works on the paths the operator names — that is the feature —
// but it refuses paths that look crafted. A path (ls, download) must be
// absolute, must not contain NUL, and must not have "." or ".." elements;
// redundant or trailing separators are cleaned (filepath.Clean). On Windows
// "/" lists the drives. An upload names a directory (same rule, or
// "$$TMP$$" for the temporary directory) and a plain file name (ValidName).
//
// Memory use is independent of file sizes: every transfer streams through a
// fixed buffer.
package files
