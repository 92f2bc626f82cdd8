package agent

// shellCaps: no interactive sessions on Windows (no ConPTY support yet).
// A pty_open sent anyway is answered with pty_opened{ok:false} saying so.
var shellCaps []string
