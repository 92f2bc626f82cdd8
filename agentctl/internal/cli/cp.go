package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// Location is one side of cp: a local path, stdin/stdout ("-"), or a
// path on an agent (ID:/path).
type Location struct {
	Agent string // "" for local
	Path  string
}

func (l Location) remote() bool { return l.Agent != "" }

func (l Location) String() string {
	if l.remote() {
		return l.Agent + ":" + l.Path
	}
	return l.Path
}

// ParseLocation reads a cp argument: ID:/path is a path on agent ID
// unless what precedes the colon holds a slash or backslash (a local
// path like ./a:b) or, on Windows, is one letter (a drive, C:\x).
func ParseLocation(s string, windows bool) (Location, error) {
	if s == "" {
		return Location{}, errors.New("empty path")
	}
	id, p, ok := strings.Cut(s, ":")
	if !ok || id == "" || strings.ContainsAny(id, `/\`) || windows && len(id) == 1 {
		return Location{Path: s}, nil
	}
	if p == "" {
		return Location{}, fmt.Errorf("%q: give a path after %s: (ID:/path)", s, id)
	}
	if strings.ContainsRune(p, 0) {
		return Location{}, fmt.Errorf("%q: path has a NUL byte", s)
	}
	return Location{Agent: id, Path: p}, nil
}

type cpFlags struct {
	recursive  bool
	quiet      bool
	mode       string
	ownUser    string
	ownGroup   string
	output     string
	noChecksum bool
}

// cpFile is one file copied, in cp's JSON output.
type cpFile struct {
	Src  string `json:"src"`
	Dst  string `json:"dst"`
	Size int64  `json:"size"`
	MD5  string `json:"md5"`
}

// cpView is the JSON of agentctl cp.
type cpView struct {
	Files   []cpFile `json:"files"`
	Bytes   int64    `json:"bytes"`
	Skipped []string `json:"skipped"`
	Seconds float64  `json:"seconds"`
}

func (a *App) cpCmd() *cobra.Command {
	var f cpFlags
	c := &cobra.Command{
		Use:   "cp SRC DST",
		Short: "Copy files to and from exec-agents (ID:/path on either side, - for stdin/stdout)",
		Long: `Copy a file between this machine and an exec-agent. One side is ID:/path on the agent, the
other a local path or - (stdin or stdout). Directories need -r. DST naming an existing
directory (or ending in /) receives the file under its own name.

Checks: an upload's MD5 is computed while it is sent and the server refuses the file when its
own differs (the agent then checks the server's); a download must be as long as announced (the
server checks the agent's MD5 and cuts a bad body short) and must match a Repr-Digest the server
sends. Downloads go to a temporary file renamed at the end: a failed copy leaves nothing behind.

A progress bar with rate and time left is shown on a terminal (not with -q, nor when stderr is
not a terminal).`,
		Example: `  agentctl cp ./app.tar.gz web-01:/opt/app/
  agentctl cp web-01:/var/log/syslog ./syslog
  agentctl cp -r ./conf web-01:/etc/myapp
  tar cz ./site | agentctl cp - web-01:/tmp/site.tar.gz
  agentctl cp web-01:/etc/hosts - | grep db`,
		Args:              args(2, 2),
		ValidArgsFunction: a.completeCp,
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := ParseLocation(args[0], runtime.GOOS == "windows")
			if err != nil {
				return usageErr(cmd, err)
			}
			dst, err := ParseLocation(args[1], runtime.GOOS == "windows")
			if err != nil {
				return usageErr(cmd, err)
			}
			switch {
			case src.remote() && dst.remote():
				return usagef(cmd, "both sides are on agents: copy through a local file")
			case !src.remote() && !dst.remote():
				return usagef(cmd, "neither side is on an agent: write one as ID:/path")
			case src.Path == "-" && f.recursive || dst.Path == "-" && f.recursive:
				return usagef(cmd, "-r does not go with - (stdin/stdout)")
			}
			var mode fs.FileMode
			if f.mode != "" {
				var m uint64
				if _, err := fmt.Sscanf(f.mode, "%o", &m); err != nil || m > 0o7777 {
					return usagef(cmd, "--mode %q: want an octal mode like 0644", f.mode)
				}
				mode = fs.FileMode(m)
			}
			cl, ctx, cancel, err := a.clientCtx(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			cp := &copier{a: a, cl: cl, f: f, mode: mode, start: time.Now(), view: cpView{Files: []cpFile{}, Skipped: []string{}}}
			if dst.remote() {
				cp.upload = true
				err = cp.uploadTo(ctx, src, dst)
			} else {
				err = cp.download(ctx, src, dst)
			}
			cp.bar.done()
			if err != nil {
				return err
			}
			return cp.report()
		},
	}
	fl := c.Flags()
	fl.BoolVarP(&f.recursive, "recursive", "r", false, "copy a directory and everything in it")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress bar")
	fl.StringVar(&f.mode, "mode", "", "upload: file mode, octal (default: the local file's; 0644 from stdin)")
	fl.StringVar(&f.ownUser, "owner", "", "upload: owner of the written files")
	fl.StringVar(&f.ownGroup, "group", "", "upload: group of the written files")
	fl.BoolVar(&f.noChecksum, "no-checksum", false, "upload: do not compute, send and compare the CRC-32C (the server still checks what it passes to the agent)")
	outputFlag(c, &f.output, "text", fmtJSON)
	return c
}

// copier does one cp.
type copier struct {
	a      *App
	cl     *client.Client
	f      cpFlags
	mode   fs.FileMode
	bar    bar
	base   int64 // bytes of the files before the current one
	start  time.Time
	view   cpView
	upload bool
}

// bar is the progress bar of a copy (nil when not shown).
type bar struct{ pb *progressbar.ProgressBar }

func (a *App) newBar(quiet bool, total int64, desc string) bar {
	if quiet || !a.IsTerminal(a.Err) {
		return bar{}
	}
	return bar{pb: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(a.Err),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(a.Err) }),
	)}
}

func (b bar) set(n int64) {
	if b.pb != nil {
		_ = b.pb.Set64(n)
	}
}

func (b bar) done() {
	if b.pb != nil && !b.pb.IsFinished() {
		_ = b.pb.Finish()
	}
}

func (cp *copier) progress(n int64) { cp.bar.set(cp.base + n) }

func (cp *copier) report() error {
	cp.view.Seconds = time.Since(cp.start).Seconds()
	if cp.f.output != "text" {
		_, err := printData(cp.a.Out, cp.f.output, cp.view)
		return err
	}
	if len(cp.view.Skipped) > 0 {
		fmt.Fprintf(cp.a.Err, "agentctl: %d not copied:\n", len(cp.view.Skipped))
		for _, s := range cp.view.Skipped {
			fmt.Fprintf(cp.a.Err, "  %s\n", s)
		}
		return exitCode(ExitRemote)
	}
	if cp.a.IsTerminal(cp.a.Err) && !cp.f.quiet {
		secs := max(cp.view.Seconds, 0.001)
		check := "lengths checked"
		switch {
		case cp.upload && cp.f.noChecksum:
			check = "no checksum sent (--no-checksum)"
		case cp.upload:
			check = "CRC-32C checked by the server"
		}
		fmt.Fprintf(cp.a.Err, "%d file(s), %s in %s (%s/s), %s\n", len(cp.view.Files), bytesIEC(uint64(cp.view.Bytes)),
			shortDuration(time.Duration(secs*float64(time.Second))), bytesIEC(uint64(float64(cp.view.Bytes)/secs)), check)
	}
	return nil
}

// remoteDir reports whether path is a directory on the agent: ls answers
// only for directories; a missing path is 404, a file 422 (older servers
// answer every agent refusal with 503).
func (cp *copier) remoteDir(ctx context.Context, agent, p string) ([]client.FileEntry, bool, error) {
	list, err := cp.cl.Ls(ctx, agent, p)
	if err == nil {
		return list, true, nil
	}
	var ae *client.Error
	if errors.As(err, &ae) && ae.Msg != "not found: agent" && (ae.Status == http.StatusNotFound ||
		ae.Status == http.StatusUnprocessableEntity || ae.Status == http.StatusServiceUnavailable) {
		return nil, false, nil
	}
	return nil, false, err
}

func (cp *copier) uploadTo(ctx context.Context, src, dst Location) error {
	if src.Path == "-" {
		if strings.HasSuffix(dst.Path, "/") {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("from stdin, %s must name the file, not a directory", dst)}
		}
		cp.bar = cp.a.newBar(cp.f.quiet, -1, path.Base(dst.Path))
		in := cp.a.In
		return cp.uploadOne(ctx, "-", dst.Agent, path.Dir(dst.Path), path.Base(dst.Path), cp.mode, -1,
			func() (io.Reader, error) { return in, nil }, true)
	}
	fi, err := os.Stat(src.Path)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	if fi.IsDir() && !cp.f.recursive {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("%s is a directory (use -r)", src.Path)}
	}
	_, isDir, err := cp.remoteDir(ctx, dst.Agent, dst.Path)
	if err != nil {
		return err
	}
	target := strings.TrimSuffix(dst.Path, "/")
	if target == "" {
		target = "/"
	}
	name := filepath.Base(src.Path)
	if fi.IsDir() {
		root := target
		if isDir {
			root = path.Join(target, name)
		}
		return cp.uploadTree(ctx, src.Path, dst.Agent, root)
	}
	dir, fileName := target, name
	if !isDir {
		if strings.HasSuffix(dst.Path, "/") {
			dir = target // created by the upload
		} else {
			dir, fileName = path.Dir(target), path.Base(target)
		}
	}
	cp.bar = cp.a.newBar(cp.f.quiet, fi.Size(), name)
	return cp.uploadOne(ctx, src.Path, dst.Agent, dir, fileName, cp.modeOf(fi), fi.Size(), fileOpener(src.Path), false)
}

func (cp *copier) modeOf(fi fs.FileInfo) fs.FileMode {
	if cp.mode != 0 {
		return cp.mode
	}
	if runtime.GOOS == "windows" {
		return 0 // no Unix modes to carry over: the server's default
	}
	return fi.Mode().Perm()
}

// fileOpener opens path afresh for each attempt (a retried upload).
func fileOpener(p string) func() (io.Reader, error) {
	var f *os.File
	return func() (io.Reader, error) {
		if f != nil {
			f.Close()
		}
		var err error
		f, err = os.Open(p)
		if err != nil {
			return nil, err
		}
		return closeAtEOF{f}, nil
	}
}

// closeAtEOF closes a file once read to its end.
type closeAtEOF struct{ f *os.File }

func (c closeAtEOF) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	if err == io.EOF {
		c.f.Close()
	}
	return n, err
}

func (cp *copier) uploadOne(ctx context.Context, srcName, agent, dir, name string, mode fs.FileMode, size int64, open func() (io.Reader, error), oneShot bool) error {
	spec := client.UploadSpec{Dir: dir, Name: name, Mode: mode, OwnUser: cp.f.ownUser, OwnGroup: cp.f.ownGroup, NoChecksum: cp.f.noChecksum}
	res, err := cp.cl.Upload(ctx, agent, spec, open, oneShot, cp.progress)
	if err != nil {
		return fmt.Errorf("upload %s to %s:%s: %w", srcName, agent, path.Join(dir, name), err)
	}
	if size >= 0 && res.Size != size {
		return fmt.Errorf("upload %s: %w: sent %d bytes, the file has %d (it changed while being sent)", srcName, client.ErrChecksum, res.Size, size)
	}
	cp.base += res.Size
	cp.view.Files = append(cp.view.Files, cpFile{Src: srcName, Dst: agent + ":" + res.Path, Size: res.Size, MD5: res.MD5})
	cp.view.Bytes += res.Size
	return nil
}

// uploadTree uploads the regular files under dir to root on the agent;
// directories come with their files (empty ones cannot be made through
// the API and are reported), links and special files are reported.
func (cp *copier) uploadTree(ctx context.Context, dir, agent, root string) error {
	type item struct {
		path, rel string
		fi        fs.FileInfo
	}
	var items []item
	var total int64
	hasFile := map[string]bool{}
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			dirs = append(dirs, rel)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			items = append(items, item{p, rel, fi})
			total += fi.Size()
			for x := path.Dir(rel); ; x = path.Dir(x) {
				hasFile[x] = true
				if x == "." {
					break
				}
			}
		default:
			cp.view.Skipped = append(cp.view.Skipped, p+" (not a regular file)")
		}
		return nil
	})
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	for _, d := range dirs {
		if !hasFile[d] {
			cp.view.Skipped = append(cp.view.Skipped, filepath.Join(dir, filepath.FromSlash(d))+"/ (empty directory: the API creates directories only for files)")
		}
	}
	cp.bar = cp.a.newBar(cp.f.quiet, total, filepath.Base(dir))
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		rdir := path.Join(root, path.Dir(it.rel))
		if err := cp.uploadOne(ctx, it.path, agent, rdir, path.Base(it.rel), cp.modeOf(it.fi), it.fi.Size(), fileOpener(it.path), false); err != nil {
			return err
		}
	}
	return nil
}

func (cp *copier) download(ctx context.Context, src, dst Location) error {
	var tree []client.FileEntry
	isDir := false
	if cp.f.recursive {
		var err error
		if tree, isDir, err = cp.remoteDir(ctx, src.Agent, src.Path); err != nil {
			return err
		}
	}
	if dst.Path == "-" {
		d, err := cp.cl.Download(ctx, src.Agent, src.Path)
		if err != nil {
			return downloadErr(src, err)
		}
		cp.bar = cp.a.newBar(cp.f.quiet, d.Size, path.Base(src.Path))
		n, sum, err := d.CopyTo(cp.a.Out, cp.f.output != "text", cp.progress)
		if err != nil {
			return fmt.Errorf("download %s: %w", src, err)
		}
		cp.view.Files = append(cp.view.Files, cpFile{Src: src.String(), Dst: "-", Size: n, MD5: sum})
		cp.view.Bytes += n
		return nil
	}
	local := dst.Path
	fi, statErr := os.Stat(local)
	localDir := statErr == nil && fi.IsDir()
	name := path.Base(strings.TrimSuffix(src.Path, "/"))
	if isDir {
		root := local
		if localDir {
			root = filepath.Join(local, name)
		}
		return cp.downloadTree(ctx, src.Agent, strings.TrimSuffix(src.Path, "/"), root, tree)
	}
	if localDir || strings.HasSuffix(local, "/") || strings.HasSuffix(local, string(filepath.Separator)) {
		local = filepath.Join(local, name)
	}
	return cp.downloadOne(ctx, src.Agent, src.Path, local, 0, true)
}

func downloadErr(src Location, err error) error {
	var ae *client.Error
	if errors.As(err, &ae) && (ae.Status == http.StatusUnprocessableEntity || ae.Status == http.StatusServiceUnavailable) &&
		strings.Contains(ae.Msg, "directory") && !strings.Contains(ae.Msg, "no such file") {
		return &ExitError{Code: ExitRemote, Err: fmt.Errorf("%s: %s — copy a directory with -r", src, ae.Msg)}
	}
	return fmt.Errorf("download %s: %w", src, err)
}

// downloadOne writes an agent's file to local through a temporary file in
// the same directory, renamed once complete and checked. A bar of its
// own when ownBar (single file), else the tree's.
func (cp *copier) downloadOne(ctx context.Context, agent, remote, local string, mode fs.FileMode, ownBar bool) error {
	src := Location{Agent: agent, Path: remote}
	d, err := cp.cl.Download(ctx, agent, remote)
	if err != nil {
		return downloadErr(src, err)
	}
	if ownBar {
		cp.bar = cp.a.newBar(cp.f.quiet, d.Size, path.Base(remote))
	}
	tmp, err := os.CreateTemp(filepath.Dir(local), "."+filepath.Base(local)+".agentctl-*")
	if err != nil {
		d.Close()
		return &ExitError{Code: ExitUsage, Err: err}
	}
	n, sum, err := d.CopyTo(tmp, cp.f.output != "text", cp.progress)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if mode == 0 { // a temporary file is 0600: take the mode of the file replaced, or 0644
		mode = 0o644
		if fi, serr := os.Stat(local); serr == nil {
			mode = fi.Mode().Perm()
		}
	}
	if err == nil && runtime.GOOS != "windows" {
		err = os.Chmod(tmp.Name(), mode.Perm())
	}
	if err == nil {
		err = os.Rename(tmp.Name(), local)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("download %s: %w", src, err)
	}
	cp.base += n
	cp.view.Files = append(cp.view.Files, cpFile{Src: src.String(), Dst: local, Size: n, MD5: sum})
	cp.view.Bytes += n
	return nil
}

// downloadTree copies a remote directory to root, recreating its
// directories; links and special files are reported.
func (cp *copier) downloadTree(ctx context.Context, agent, dir, root string, top []client.FileEntry) error {
	type item struct {
		remote, local string
		mode          fs.FileMode
	}
	var items []item
	var total int64
	var walk func(rdir, ldir string, list []client.FileEntry) error
	walk = func(rdir, ldir string, list []client.FileEntry) error {
		if err := os.MkdirAll(ldir, 0o755); err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		for _, e := range list {
			if e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, `/\`) || e.Name == "" {
				cp.view.Skipped = append(cp.view.Skipped, fmt.Sprintf("%s:%s/%q (not a plain file name)", agent, rdir, e.Name))
				continue
			}
			rp, lp := path.Join(rdir, e.Name), filepath.Join(ldir, e.Name)
			switch {
			case e.IsLink:
				cp.view.Skipped = append(cp.view.Skipped, agent+":"+rp+" (a link to "+e.LinkDir+")")
			case e.IsDir:
				sub, err := cp.cl.Ls(ctx, agent, rp)
				if err != nil {
					return err
				}
				if err := walk(rp, lp, sub); err != nil {
					return err
				}
			case fs.FileMode(e.Auth)&fs.ModeType == 0:
				items = append(items, item{rp, lp, e.Auth.Perm()})
				total += e.Size
			default:
				cp.view.Skipped = append(cp.view.Skipped, agent+":"+rp+" (not a regular file)")
			}
		}
		return nil
	}
	if err := walk(dir, root, top); err != nil {
		return err
	}
	cp.bar = cp.a.newBar(cp.f.quiet, total, path.Base(dir))
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := cp.downloadOne(ctx, agent, it.remote, it.local, it.mode, false); err != nil {
			return err
		}
	}
	return nil
}
