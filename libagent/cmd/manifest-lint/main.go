// Command manifest-lint checks agent manifests and, with -conf, a config
// file against them.
//
//	manifest-lint [-conf agent.conf] [-basic=false] manifest.yaml...
//
// The manifests are merged with the built-in basic.* items (unless
// -basic=false) and validated; each problem is printed as
// "file:line: key: problem". The exit status is 0 when there is none, 1 when
// there are problems and 2 on usage or I/O errors.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/agentfleet/libagent/manifest"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("manifest-lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("conf", "", "also check this kvconf config file against the manifests")
	basic := fs.Bool("basic", true, "include the built-in basic.* items")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: manifest-lint [-conf agent.conf] [-basic=false] manifest.yaml...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var ms []*manifest.Manifest
	if *basic {
		ms = append(ms, manifest.Basic())
	}
	var problems manifest.Problems
	for _, path := range fs.Args() {
		m, err := parseFile(path)
		if errors.Is(err, manifest.ErrSyntax) {
			fmt.Fprintln(stdout, err)
			problems = append(problems, manifest.Problem{})
			continue
		}
		if err != nil {
			fmt.Fprintln(stderr, "manifest-lint:", err)
			return 2
		}
		ms = append(ms, m)
	}
	merged := manifest.Merge(ms...)
	problems = append(problems, print(stdout, merged.Validate())...)
	if *conf != "" && len(problems) == 0 {
		f, err := os.Open(*conf)
		if err != nil {
			fmt.Fprintln(stderr, "manifest-lint:", err)
			return 2
		}
		ps, err := merged.CheckConfig(f, *conf)
		f.Close()
		if err != nil {
			fmt.Fprintln(stderr, "manifest-lint:", err)
			return 2
		}
		problems = append(problems, print(stdout, ps)...)
	}
	if len(problems) > 0 {
		return 1
	}
	return 0
}

func parseFile(path string) (*manifest.Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return manifest.Parse(f, path)
}

func print(w io.Writer, ps manifest.Problems) manifest.Problems {
	for _, p := range ps {
		fmt.Fprintln(w, p)
	}
	return ps
}
