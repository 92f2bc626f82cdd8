#!/bin/sh
# preremove of @NAME@ (deb prerm and rpm %preun; .ci/release fills in @NAME@
# and @CONF@). Stops and unregisters the service only when the package is
# really removed, never on an upgrade (the new postinstall restarts it).
#
#   deb: prerm remove                     removal
#        prerm upgrade <new-version>      upgrade: nothing
#        prerm deconfigure|failed-upgrade nothing
#   rpm: %preun 0                         removal (erase)
#        %preun 1 (or more)               upgrade: nothing
#
# Failures are reported but never block the removal: a service that was never
# registered (or was unregistered by hand) must not make the package
# impossible to remove.
set -u

NAME=@NAME@
BIN="${DPKG_ROOT:-}/opt/$NAME/bin/$NAME"
CONF="${DPKG_ROOT:-}/opt/$NAME/conf/@CONF@"

case "${1:-}" in
remove | 0)
	"$BIN" stop --conf "$CONF" || echo "$NAME: stopping the service failed (not running?)" >&2
	"$BIN" uninstall --conf "$CONF" || echo "$NAME: unregistering the service failed (not registered?)" >&2
	;;
esac
exit 0
