// Command manifest-lint checks agent manifests and, with -conf, a config
// file against them; with -markdown it prints them as a configuration
// reference.
//
//	manifest-lint [-conf agent.conf] [-basic=false] manifest.yaml...
//	manifest-lint -markdown [-basic=false] manifest.yaml...
//
// The manifests are merged with the built-in basic.* items (unless
// -basic=false) and validated; each problem is printed as
// "file:line: key: problem". The exit status is 0 when there is none, 1 when
// there are problems and 2 on usage or I/O errors.
//
// -markdown prints, when the manifests are valid, one "## <file>" section per
// manifest (the basic.* items first) with a table of key, type, default,
// allowed values, enabled-when condition and the English and Chinese
// description; problems go to stderr and nothing is printed on stdout.
// docs/config-reference.md is this output (see reference_test.go).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/agentfleet/libagent/manifest"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("manifest-lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("conf", "", "also check this kvconf config file against the manifests")
	basic := fs.Bool("basic", true, "include the built-in basic.* items")
	md := fs.Bool("markdown", false, "print the manifests as Markdown tables (a configuration reference)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: manifest-lint [-conf agent.conf] [-basic=false] manifest.yaml...")
		fmt.Fprintln(stderr, "       manifest-lint -markdown [-basic=false] manifest.yaml...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 || (*md && *conf != "") {
		fs.Usage()
		return 2
	}
	// In -markdown mode stdout is the document: problems go to stderr.
	report := stdout
	if *md {
		report = stderr
	}
	var ms []titled
	if *basic {
		ms = append(ms, titled{basicTitle, manifest.Basic()})
	}
	var problems manifest.Problems
	for _, path := range fs.Args() {
		m, err := parseFile(path)
		if errors.Is(err, manifest.ErrSyntax) {
			fmt.Fprintln(report, err)
			problems = append(problems, manifest.Problem{})
			continue
		}
		if err != nil {
			fmt.Fprintln(stderr, "manifest-lint:", err)
			return 2
		}
		ms = append(ms, titled{code(filepath.ToSlash(path)), m})
	}
	all := make([]*manifest.Manifest, len(ms))
	for i, t := range ms {
		all[i] = t.m
	}
	merged := manifest.Merge(all...)
	problems = append(problems, print(report, merged.Validate())...)
	if *md {
		if len(problems) > 0 {
			return 1
		}
		if err := writeMarkdown(stdout, ms); err != nil {
			fmt.Fprintln(stderr, "manifest-lint:", err)
			return 2
		}
		return 0
	}
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

// basicTitle heads the table of the built-in basic.* items.
const basicTitle = "`basic.*`: every agent (built into libagent, `libagent/manifest/basic.yaml`)"

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
