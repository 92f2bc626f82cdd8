// Package agent is the exec-agent: the handlers that connect the OS-facing
// packages (runner for commands, files for listings and transfers) to the
// libagent runtime, and the agent's config.
//
// # Messages
//
//   - exec (10) → execd (11), exec_data (12)…, exec_done (13), all sent with
//     Replier.ReplyReliable: journaled until acked when the server speaks
//     ack.v1, so a result survives a dropped connection. execd always comes
//     first and exec_done strictly after the last exec_data: the runner
//     reports the end only after the output is read to its end, and every
//     chunk is sent (blocking while the send queue or journal is full —
//     the back-pressure reaches the command) before the next is read. A
//     start failure (busy, bad request, no such directory) is execd{ok:
//     false, msg} and nothing more. The handler runs as long as its task, so
//     the runtime's Cancel(tid) and the agent's shutdown kill the task's
//     whole process tree, and shutdown waits for the task's exec_done.
//   - exec_kill (14) kills a task's process tree by pid and/or task id; with
//     stream.v1 and a tid it is answered by exec_kill_rep (103). ps_req
//     (101) → ps_rep (102) lists the running tasks.
//   - ls_req (20) → ls_rep (21).
//   - upload (22) → upload_rep (23): inline data (at most 1 MiB decoded,
//     jkframe/compress forms) or uri + token fetched from the server;
//     written to a temporary file, checked, renamed into place. "$$TMP$$"
//     is Config.File.TempDir. With auth su/sudo and no own_user, the file is
//     given to user (the v1 agent wrote it as that user). A mode or owner
//     that cannot be applied is reported with ok:false and a msg that says
//     the file was written.
//   - download_req (24): with uri + token (bulk.v1) the bytes (optionally a
//     range) are PUT to the server, then download_rep{size, md5, total};
//     otherwise v1: download_rep{size, block_size 32768, md5}, download_data
//     blocks in offset order, or download_error when reading fails midway
//     (the file changed, an I/O error).
//   - pty_open (104) → pty_opened (105), pty_output (107)…, pty_ack (109)…,
//     pty_exit (110): an interactive session in a pty (pty.v1; not announced
//     on Windows, where pty_open is refused as not supported). The handler
//     runs as long as the session and is scoped to its connection: a lost
//     connection kills the session's process tree. pty_input (106),
//     pty_resize (108), pty_ack (109) and pty_close (111) are handled
//     inline, in arrival order, and only hand their content to the session.
//     Output is sent one message per credit the server granted; keystrokes
//     queue up to the window the agent granted (a peer exceeding it ends
//     the session). exec.shell_idle_timeout ends a session without input
//     or output.
//
// Concurrency: the runner limits the commands running at once
// (exec.max_tasks; interactive sessions take the same slots); beyond it
// execd (or pty_opened) says "busy". libagent runs at most 64 handlers at once and an exec holds one for its lifetime, so
// exec.max_tasks is capped at MaxTasksLimit to keep room for file requests.
package agent
