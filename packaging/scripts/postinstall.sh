#!/bin/sh
# postinstall of @NAME@ (deb postinst and rpm %post; .ci/release fills in
# @NAME@ and @CONF@). Registers and starts the service on the first install,
# restarts it on an upgrade, and does nothing for dpkg's abort-* calls.
#
#   deb: postinst configure ""            first install
#        postinst configure <old-version> upgrade (or reinstall)
#   rpm: %post 1                          first install
#        %post 2 (or more)                upgrade
#
# A failure of the service manager (no systemd in a container, say) is
# reported but does not fail the package: the files are in place and the
# operator can run the printed command.
set -u

NAME=@NAME@
BIN="${DPKG_ROOT:-}/opt/$NAME/bin/$NAME"
CONF="${DPKG_ROOT:-}/opt/$NAME/conf/@CONF@"

svc() {
	if ! "$BIN" "$1" --conf "$CONF"; then
		echo "$NAME: '$BIN $1 --conf $CONF' failed; run it by hand once the service manager is available" >&2
		return 1
	fi
}

case "${1:-}" in
configure)
	if [ -z "${2:-}" ]; then
		action=install
	else
		action=upgrade
	fi
	;;
1) action=install ;;
[2-9] | [1-9][0-9]*) action=upgrade ;;
*) action=none ;;
esac

case "$action" in
install)
	svc install && svc start
	;;
upgrade)
	svc restart
	;;
esac
exit 0
