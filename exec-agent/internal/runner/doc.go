// Package runner runs the exec-agent's commands: one OS process tree per
// task, its output streamed in order, its end reported exactly once after the
// last chunk, and the whole tree killed on timeout, kill or cancellation.
//
// # Running
//
// On Unix a command runs as `/bin/sh -c '<Cmd> <quoted Args…>'` in a new
// session with a pty (200×50) as its terminal — output as a terminal shows
// it, CRLF line ends, stdout and stderr merged — or, with Spec.Pipe, in a new
// process group with stdout and stderr on one pipe (interleaved in write
// order) and stdin from /dev/null. On Windows it runs as `cmd /C <Cmd>
// <Args…>` with pipes, in a job object.
//
// # Ending
//
// One goroutine per task reads the output to its end, then waits for the
// process, then calls Output.Done: the end cannot overtake output. The exit
// code is the process's; killed by signal n it is 128+n. Timeout, Kill and
// context cancellation send SIGTERM (and SIGCONT) to the process group and to
// every process of the tree, then SIGKILL after Options.KillGrace to whatever
// is left, repeating until nothing is. On Linux the tree is found in /proc:
// the group, the session, all descendants, and every process whose
// environment holds the task's marker variable EXEC_AGENT_TASK (it finds a
// grandchild that called setsid and whose parent has exited). Processes left
// behind by a main process that exited normally are not killed (a command may
// start a daemon).
//
// # Draining
//
// The output is read to its end of file, however long after the main
// process's exit that takes: a reader that fell behind (a slow connection,
// an agent starved of CPU) loses nothing. Processes left behind that keep
// the pipe open are read from as long as they keep writing. Only when, after
// the main process exited, nothing has been read for Options.DrainTimeout
// and nothing waits unread in the pipe (FIONREAD, Linux) does the reader let
// go: what is buffered is read, and the Result reports the cut (Cut, the
// holding processes in Holders). With a terminal the kernel hangs it up when
// the main process — the session leader — exits, so the output ends with
// what was written until then. Bytes read but not delivered after an
// Output error are counted in Result.Dropped.
//
// # Differences from v1 agents
//
//   - Args are shell-quoted one by one; v1 joined them unquoted, so callers
//     that pre-quoted arguments now see their quotes literally.
//   - su runs as `su -s /bin/sh -c <script> <user>`: the script runs under sh
//     even for users whose login shell is nologin.
//   - The password is typed only once the terminal's echo is off, followed by
//     end-of-file: a wrong password fails at once, and the command reads EOF
//     from its terminal.
//   - A kill or timeout ends the whole tree, gracefully first: the code is
//     143 when the shell obeyed SIGTERM, 137 when it needed SIGKILL (v1: -1).
//   - Output that is not UTF-8 is decoded as GBK per run of non-ASCII bytes,
//     not per read (see Decoder).
package runner
