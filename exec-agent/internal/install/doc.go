// Package install is the host side of software installation (the seed's
// /install/run and /install/status): it fetches a package (from a URL or a
// local file handed over by the caller), verifies it, and installs it —
// deb with dpkg or apt-get, rpm with rpm, dnf or yum, msi with msiexec, exe
// with silent flags, or unpacks an archive (tar, tar.gz, tar.bz2, zip) into a
// directory — while writing the action log (download, install, file, done)
// to an append-only journal on disk, so that an install cut short by a
// restart of the agent is reported (done, not ok) once the agent is back.
//
// The pieces are usable alone: Fetcher (download with limits and checksum),
// Extract (hardened archive unpacking), KindOf/CheckMagic (package type),
// Store/Journal (the action log on disk), and Engine, which runs a whole
// Request through them and, for installers, through the exec runner (so su
// and sudo work as they do for exec).
//
// docs/install.md describes the design and its limits.
package install
