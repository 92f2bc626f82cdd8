//go:build linux && e2ebench

package e2e

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/filetest"
)

// TestCpThroughput measures `agentctl cp` of a 200 MB file against curl
// on the same routes, side by side: each round copies the file up and down
// once with each tool, the order alternating between rounds, and the
// medians of the wall times are compared (BENCHMARKS.md).
//
//	ROUNDS=7 go test -tags e2ebench -timeout 60m -run TestCpThroughput -v ./e2e/
func TestCpThroughput(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed")
	}
	rounds := 7
	if n, err := strconv.Atoi(os.Getenv("ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	const size = 200 << 20
	dir := t.TempDir()
	src := filepath.Join(dir, "big.bin")
	sum := filetest.Make(t, src, size, filetest.Noise)
	remote := filepath.Join(dir, "remote")
	os.Mkdir(remote, 0o755)
	agent := "e2e-a1"
	env := fleet.baseEnv(t)

	timeCmd := func(name string, args ...string) time.Duration {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = env
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return time.Since(start)
	}
	auth := "Authorization: Bearer " + opToken
	up := map[string]func() time.Duration{
		"agentctl": func() time.Duration {
			return timeCmd(bins.ctl, "cp", "-q", src, agent+":"+remote+"/up-agentctl.bin")
		},
		"agentctl --no-checksum": func() time.Duration {
			return timeCmd(bins.ctl, "cp", "-q", "--no-checksum", src, agent+":"+remote+"/up-agentctl-nosum.bin")
		},
		"curl": func() time.Duration {
			return timeCmd("curl", "-sS", "-f", "-o", "/dev/null", "-H", auth, "-F", "dir="+remote, "-F", "name=up-curl.bin",
				"-F", "file=@"+src, fleet.url+"/api/file/"+agent+"/upload")
		},
		// An MD5 check made with curl (agentctl checks a CRC-32C).
		"curl+md5": func() time.Duration {
			return timeCmd("sh", "-c", `curl -sS -f -o /dev/null -H "$1" -F "dir=$2" -F name=up-curl-md5.bin -F "md5=$(md5sum "$3" | cut -c1-32)" -F "file=@$3" "$4"`,
				"sh", auth, remote, src, fleet.url+"/api/file/"+agent+"/upload")
		},
	}
	down := map[string]func() time.Duration{
		"agentctl": func() time.Duration {
			return timeCmd(bins.ctl, "cp", "-q", agent+":"+src, filepath.Join(dir, "down-agentctl.bin"))
		},
		"curl": func() time.Duration {
			return timeCmd("curl", "-sS", "-f", "-H", auth, "-o", filepath.Join(dir, "down-curl.bin"),
				fleet.url+"/api/file/"+agent+"/download?dir="+url.QueryEscape(src))
		},
	}
	times := map[string][]time.Duration{}
	for i := range rounds {
		order := []string{"agentctl", "curl", "curl+md5", "agentctl --no-checksum"}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, tool := range order {
			times["upload "+tool] = append(times["upload "+tool], up[tool]())
		}
		for _, tool := range order {
			if down[tool] != nil {
				times["download "+tool] = append(times["download "+tool], down[tool]())
			}
		}
	}
	for _, f := range []string{filepath.Join(remote, "up-agentctl.bin"), filepath.Join(remote, "up-curl.bin"),
		filepath.Join(remote, "up-curl-md5.bin"), filepath.Join(remote, "up-agentctl-nosum.bin"), filepath.Join(dir, "down-agentctl.bin"), filepath.Join(dir, "down-curl.bin")} {
		if got, _ := filetest.MD5(t, f); got != sum {
			t.Errorf("%s: md5 %s, want %s", f, got, sum)
		}
	}
	median := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	mbps := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
	t.Logf("200 MiB, %d rounds, medians (MiB/s):", rounds)
	for _, dir := range []string{"upload", "download"} {
		a, c := median(times[dir+" agentctl"]), median(times[dir+" curl"])
		ratio := mbps(a) / mbps(c)
		t.Logf("%-8s agentctl %7.1f MiB/s (%v)   curl %7.1f MiB/s (%v)   agentctl/curl %.0f%%",
			dir, mbps(a), a.Round(time.Millisecond), mbps(c), c.Round(time.Millisecond), 100*ratio)
		// Each round's tools ran back to back, under about the same load
		// from the machine's other users: the ratio within a round varies
		// less than the medians of the times, which runs minutes apart.
		var paired []float64
		for i, x := range times[dir+" agentctl"] {
			paired = append(paired, times[dir+" curl"][i].Seconds()/x.Seconds())
		}
		slices.Sort(paired)
		t.Logf("%-8s agentctl/curl within each round, median %.0f%% (%.0f%% .. %.0f%%)", dir, 100*paired[len(paired)/2], 100*paired[0], 100*paired[len(paired)-1])
		t.Logf("%-8s all agentctl %v", dir, fmtTimes(times[dir+" agentctl"]))
		t.Logf("%-8s all curl     %v", dir, fmtTimes(times[dir+" curl"]))
		if m := times[dir+" agentctl --no-checksum"]; m != nil {
			t.Logf("%-8s agentctl --no-checksum %7.1f MiB/s (%v), of curl %.0f%%; all %v",
				dir, mbps(median(m)), median(m).Round(time.Millisecond), 100*mbps(median(m))/mbps(c), fmtTimes(m))
		}
		if m := times[dir+" curl+md5"]; m != nil {
			t.Logf("%-8s curl with md5sum first %7.1f MiB/s (%v), agentctl/that %.0f%%; all %v",
				dir, mbps(median(m)), median(m).Round(time.Millisecond), 100*mbps(a)/mbps(median(m)), fmtTimes(m))
		}
		if ratio < 0.9 {
			t.Errorf("%s: agentctl reaches %.0f%% of curl's throughput, want at least 90%%", dir, 100*ratio)
		}
	}
}

func fmtTimes(d []time.Duration) string {
	s := ""
	for _, x := range d {
		s += fmt.Sprintf(" %.2fs", x.Seconds())
	}
	return s
}
