// Command mkpkg writes a test package of one file (pkgtest.Build) for the
// end-to-end tests of other modules, which do not depend on nfpm:
//
//	mkpkg -format rpm -name app -version 1.0.0 -dst /opt/app/hello.txt -body 'hi' -o app.rpm
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/agentfleet/exec-agent/internal/pkgtest"
)

func main() {
	var s pkgtest.Spec
	format := flag.String("format", "deb", "deb or rpm")
	out := flag.String("o", "", "the package file to write")
	flag.StringVar(&s.Name, "name", "", "package name")
	flag.StringVar(&s.Version, "version", "1.0.0", "package version")
	flag.StringVar(&s.Dst, "dst", "", "the installed file's absolute path")
	flag.StringVar(&s.Body, "body", "", "the installed file's content")
	flag.StringVar(&s.PostInst, "postinst", "", "a postinstall script")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "mkpkg: -o is required")
		os.Exit(2)
	}
	b, err := pkgtest.Build(*format, s)
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkpkg:", err)
		os.Exit(1)
	}
}
