package cli

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// logFileView is a log file in agentctl's JSON output.
type logFileView struct {
	Name    string      `json:"name"`
	Size    int64       `json:"size"`
	ModTime client.Time `json:"mod_time"`
}

// maxLogText bounds a log file read into memory for printing.
const maxLogText = 512 << 20

func (a *App) logsCmd() *cobra.Command {
	var list bool
	var files []string
	var tail int
	var zipOut, output string
	c := &cobra.Command{
		Use:   "logs ID",
		Short: "Print an agent's own log (or list its log files, or save them as a zip)",
		Long: `Print the log of the agent itself (not of its host): by default its newest log file, or
the files named with --file, through the server's log download (a zip the agent builds).
--ls lists the files; --zip saves the zip as it comes.`,
		Example: `  agentctl logs web-01 --tail 50
  agentctl logs web-01 --ls
  agentctl logs web-01 --file exec-agent.log --file exec-agent-2026-01-02T00-00-00.log --zip web-01-logs.zip`,
		Args:              args(1, 1),
		ValidArgsFunction: a.completeAgentIDs(false, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tail < 0 {
				return usagef(cmd, "--tail must not be negative")
			}
			cl, ctx, cancel, err := a.clientCtx(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			id := args[0]
			var logs []client.LogFile
			if list || len(files) == 0 {
				if logs, err = cl.AgentLogs(ctx, id); err != nil {
					return err
				}
			}
			if list {
				views := make([]logFileView, len(logs))
				for i, l := range logs {
					views[i] = logFileView{Name: l.Name, Size: l.Size, ModTime: l.ModTime}
				}
				if ok, err := printData(a.Out, output, views); ok {
					return err
				}
				t := newTable(a.Out, "NAME", "SIZE", "MODIFIED")
				for _, l := range logs {
					t.row(l.Name, bytesIEC(uint64(max(l.Size, 0))), stamp(l.ModTime))
				}
				return t.flush()
			}
			if len(files) == 0 {
				if len(logs) == 0 {
					return &ExitError{Code: ExitRemote, Err: fmt.Errorf("%s has no log files (it may log to stdout only: basic.log.target)", id)}
				}
				newest := slices.MaxFunc(logs, func(x, y client.LogFile) int { return x.ModTime.Compare(y.ModTime.Time) })
				files = []string{newest.Name}
			}
			resp, err := cl.AgentLogZip(ctx, id, files)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if zipOut != "" {
				return saveFile(zipOut, resp.Body, resp.ContentLength)
			}
			b, err := io.ReadAll(io.LimitReader(resp.Body, maxLogText+1))
			if err != nil {
				return &client.ConnError{Server: resp.Request.URL.Host, Err: err}
			}
			if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
				return fmt.Errorf("log zip: %w: %d bytes of %d", client.ErrChecksum, len(b), resp.ContentLength)
			}
			return printLogs(a.Out, b, files, tail)
		},
	}
	c.Flags().BoolVar(&list, "ls", false, "list the log files")
	c.Flags().StringArrayVar(&files, "file", nil, "log file to print (repeatable; default: the newest)")
	c.Flags().IntVar(&tail, "tail", 0, "print only the last N lines of each file")
	c.Flags().StringVar(&zipOut, "zip", "", "save the zip of the files to this path instead of printing")
	outputFlag(c, &output, fmtTable, fmtJSON, fmtYAML)
	return c
}

// printLogs prints the files of a log zip in the order asked, gunzipping
// rotated files.
func printLogs(w io.Writer, zb []byte, order []string, tail int) error {
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		return fmt.Errorf("log zip: %w", err)
	}
	byName := map[string]*zip.File{}
	for _, f := range zr.File {
		byName[filepath.Base(f.Name)] = f
	}
	for i, name := range order {
		f := byName[name]
		if f == nil {
			return &ExitError{Code: ExitRemote, Err: fmt.Errorf("%s is not in the agent's zip", name)}
		}
		if len(order) > 1 {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "==> %s <==\n", name)
		}
		if err := printLog(w, f, tail); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func printLog(w io.Writer, f *zip.File, tail int) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	var r io.Reader = rc
	if strings.HasSuffix(f.Name, ".gz") {
		zr, err := gzip.NewReader(rc)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	r = io.LimitReader(r, maxLogText)
	if tail == 0 {
		_, err := io.Copy(w, r)
		return err
	}
	ring := make([]string, 0, tail)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if len(ring) == tail {
			ring = ring[1:]
		}
		ring = append(ring, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for _, l := range ring {
		fmt.Fprintln(w, l)
	}
	return nil
}

// saveFile writes r to path through a temporary file, checking the length
// when announced.
func saveFile(path string, r io.Reader, size int64) error {
	return saveTo(path, func(w io.Writer) error {
		n, err := io.Copy(w, r)
		if err == nil && size >= 0 && n != size {
			err = fmt.Errorf("%w: %d bytes of %d", client.ErrChecksum, n, size)
		}
		return err
	})
}

// saveTo writes path (mode 0644) through a temporary file in its
// directory, renamed once write succeeded: a failure leaves nothing.
func saveTo(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".agentctl-*")
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	err = write(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		if errors.Is(err, client.ErrChecksum) {
			return err
		}
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}
