package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/agentfleet/agentctl/internal/client"
)

func (a *App) shellCmd() *cobra.Command {
	var user string
	c := &cobra.Command{
		Use:   "shell ID [-- CMD...]",
		Short: "Open an interactive terminal on an exec-agent",
		Long: `Open an interactive terminal on an exec-agent (GET /api/exec/{id}/shell as a WebSocket):
the local terminal is put in raw mode, its size follows window changes, and agentctl exits with
the remote shell's exit code. Without CMD the agent starts the user's login shell. When stdin is
not a terminal it is sent as typed, followed by an end-of-file (Ctrl-D).`,
		Example: `  agentctl shell web-01
  agentctl shell web-01 --user deploy
  agentctl shell web-01 -- top`,
		Args:              args(1, 1),
		ValidArgsFunction: a.completeAgentIDs(false, "exec-agent"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var command string
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				command = strings.Join(args[dash:], " ")
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			return a.shell(cmd.Context(), cl, args[0], client.ShellOptions{Cmd: command, User: user})
		},
	}
	c.Flags().StringVar(&user, "user", "", "log in as this user")
	return c
}

// shell runs one interactive session.
func (a *App) shell(ctx context.Context, cl *client.Client, id string, o client.ShellOptions) error {
	o.Cols, o.Rows = 80, 24
	outFile, _ := a.Out.(*os.File)
	inFile, _ := a.In.(*os.File)
	outTTY := outFile != nil && a.IsTerminal(outFile)
	inTTY := inFile != nil && a.IsTerminal(inFile)
	if outTTY {
		if w, h, err := term.GetSize(int(outFile.Fd())); err == nil && w > 0 && h > 0 {
			o.Cols, o.Rows = w, h
		}
	}
	conn, err := cl.DialShell(ctx, id, o)
	if client.IsRouteMissing(err) {
		return &ExitError{Code: ExitRemote, Err: errors.New("the server has no interactive shell route (GET /api/exec/{id}/shell): it is older than this agentctl (agentctl version)")}
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	if outTTY {
		defer prepareOutput(outFile)()
	}
	if inTTY {
		old, err := term.MakeRaw(int(inFile.Fd()))
		if err != nil {
			return fmt.Errorf("raw mode: %w", err)
		}
		defer term.Restore(int(inFile.Fd()), old) //nolint:errcheck // nothing better to do
	}
	s := &shellSession{conn: conn}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if outTTY {
		wg.Go(func() {
			watchResize(ctx, outFile, func(cols, rows int) {
				_ = s.control(map[string]any{"type": "resize", "cols": cols, "rows": rows})
			})
		})
	}
	// stdin is read by a goroutine of its own that nobody can interrupt
	// (a blocked read of a terminal does not end); the process exits
	// after the session, which ends it.
	go s.pumpInput(a.In, !inTTY)
	code, err := s.readOutput(a.Out, a.Err)
	if err != nil {
		return err
	}
	return exitCode(code)
}

// shellSession is one WebSocket: one reader (readOutput), writes under mu.
type shellSession struct {
	conn *websocket.Conn
	mu   sync.Mutex
}

func (s *shellSession) write(typ int, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(client.ShellWriteTimeout))
	return s.conn.WriteMessage(typ, b)
}

func (s *shellSession) control(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(websocket.TextMessage, b)
}

// pumpInput sends stdin as binary frames; at its end a piped stdin sends
// Ctrl-D, which ends the input of the remote terminal.
func (s *shellSession) pumpInput(in io.Reader, eot bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if werr := s.write(websocket.BinaryMessage, buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if eot {
				_ = s.write(websocket.BinaryMessage, []byte{4})
			}
			return
		}
	}
}

// readOutput copies terminal bytes to out until the exit message and the
// close after it.
func (s *shellSession) readOutput(out, errw io.Writer) (int, error) {
	code, exited := 0, false
	for {
		typ, b, err := s.conn.ReadMessage()
		if err != nil {
			if exited {
				return code, nil
			}
			if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				return 0, &ExitError{Code: ExitRemote, Err: errors.New("the shell closed without an exit status")}
			}
			return 0, &client.ConnError{Server: s.conn.RemoteAddr().String(), Err: fmt.Errorf("shell: %w", err)}
		}
		switch typ {
		case websocket.BinaryMessage:
			if _, err := out.Write(b); err != nil {
				return 0, err
			}
		case websocket.TextMessage:
			var m client.ShellControl
			if err := json.Unmarshal(b, &m); err != nil {
				continue // a control message of a later version
			}
			switch m.Type {
			case "exit":
				code, exited = m.Code, true
				if m.Msg != "" { // the agent ended the session itself
					fmt.Fprintf(errw, "\r\nagentctl: the session ended: %s\r\n", m.Msg)
				}
				_ = s.write(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			case "error":
				return 0, &ExitError{Code: ExitRemote, Err: fmt.Errorf("shell: %s", m.Msg)}
			}
		}
	}
}
