package hostmetrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agentfleet/libagent/protocol"
)

// scrape serves s's collector through promhttp and returns the text.
func scrape(t testing.TB, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics/hosts", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func hostsHandler(t testing.TB, s *Service) http.Handler {
	t.Helper()
	return promhttp.HandlerFor(s.Gatherer(), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

func TestHostsExposition(t *testing.T) {
	c := newClock()
	s := newService(t, openStore(t), c, nil)
	h := hostsHandler(t, s)

	for i, id := range []string{"web-1", "db-1"} {
		s.HandleStatic(id, staticMsg(i))
		s.HandleDynamic(id, dynMsg(&protocol.HMDynamicRep{
			Usage:        sampleUsage(i),
			Process:      make([]protocol.HMProcess, 10+i),
			Connections:  []protocol.HMConnection{{Type: "tcp4", Local: "1.2.3.4:5"}},
			Temperatures: []protocol.HMTemperature{{Name: "coretemp_core0", Temp: 41.25}},
		}))
	}
	out := scrape(t, h)
	want := []string{
		`node_uname_info{id="web-1",machine="x86_64",nodename="host-0",platform="debian",platform_version="12.5",release="6.1.0-18-amd64",sysname="linux"} 1`,
		`node_uname_info{id="db-1",machine="x86_64",nodename="host-1",platform="debian",platform_version="12.5",release="6.1.0-18-amd64",sysname="linux"} 1`,
		`node_boot_time_seconds{id="web-1"} 1.7934912e+09`,
		`node_cpus{id="db-1"} 8`,
		`node_cpu_usage_percent{id="web-1"} 12.5`,
		`node_load1{id="web-1"} 0.5`,
		`node_load5{id="db-1"} 0.25`,
		`node_load15{id="db-1"} 0.1`,
		`node_memory_MemTotal_bytes{id="web-1"} 1.7179869184e+10`,
		`node_memory_MemUsed_bytes{id="web-1"} 4.294967296e+09`,
		`node_memory_MemFree_bytes{id="web-1"} 8.589934592e+09`,
		`node_memory_MemAvailable_bytes{id="web-1"} 1.1811160064e+10`,
		`node_memory_SwapTotal_bytes{id="web-1"} 2.147483648e+09`,
		`node_memory_SwapUsed_bytes{id="web-1"} 1.048576e+06`,
		`node_memory_SwapFree_bytes{id="web-1"} 2.146435072e+09`,
		`node_filesystem_size_bytes{fstype="ext4",id="web-1",mountpoint="/"} 1.073741824e+11`,
		`node_filesystem_free_bytes{fstype="ext4",id="web-1",mountpoint="/"} 6.442450944e+10`,
		`node_filesystem_avail_bytes{fstype="ext4",id="web-1",mountpoint="/"} 5.905580032e+10`,
		`node_filesystem_files{fstype="ext4",id="web-1",mountpoint="/"} 6.5536e+06`,
		`node_filesystem_files_free{fstype="ext4",id="web-1",mountpoint="/"} 6.5535e+06`,
		`node_filesystem_size_bytes{fstype="xfs",id="db-1",mountpoint="/home"} 4.294967296e+11`,
		`node_disk_read_bytes_per_second{id="web-1",mountpoint="/"} 1024`,
		`node_disk_written_bytes_per_second{id="web-1",mountpoint="/"} 2048`,
		`node_network_transmit_bytes_total{device="eth0",id="web-1"} 1000`,
		`node_network_transmit_bytes_total{device="eth0",id="db-1"} 2000`,
		`node_network_receive_bytes_total{device="eth0",id="db-1"} 2000`,
		`node_network_receive_packets_total{device="lo",id="db-1"} 1`,
		`node_network_transmit_packets_total{device="eth0",id="db-1"} 10`,
		`node_processes{id="web-1"} 10`,
		`node_processes{id="db-1"} 11`,
		`node_hwmon_temp_celsius{id="db-1",sensor="coretemp_core0"} 41.25`,
		`# TYPE node_network_receive_bytes_total counter`,
		`# TYPE node_load1 gauge`,
	}
	for _, w := range want {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("missing %s", w)
		}
	}
	for _, banned := range []string{"process_", "connection", "1.2.3.4", "agentserver_host_capped_items"} {
		if strings.Contains(out, banned) {
			t.Errorf("exposition contains %q", banned)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// TestHostsStale: a host leaves after StaleIntervals usage intervals
// without usage (the interval from type 37, else observed, else the
// default), and at once when forgotten (disconnected).
func TestHostsStale(t *testing.T) {
	c := newClock()
	s := newService(t, openStore(t), c, func(o *Options) { o.DefaultInterval = time.Minute })
	h := hostsHandler(t, s)
	usage := func(id string) { s.HandleDynamic(id, dynMsg(&protocol.HMDynamicRep{Usage: sampleUsage(0)})) }
	has := func(id string) bool { return strings.Contains(scrape(t, h), `node_load1{id="`+id+`"}`) }

	usage("observed") // pushes every 10 s
	usage("reported") // says its interval is 5 s
	usage("default")  // one push: 1 min assumed
	usage("gone")
	usage("quick") // two pushes 10 ms apart: an observed "interval" of 10 ms
	s.HandleAgentStatus("reported", &protocol.Msg{Type: protocol.TypeHMAgentStatus, Payload: &protocol.HMAgentStatus{Jobs: []protocol.HMAgentJob{{Name: "usage", Interval: 5}}}})
	c.Add(10 * time.Millisecond)
	usage("quick")
	c.Add(10 * time.Second)
	usage("observed")
	s.Forget("gone")
	if has("gone") || !has("observed") || !has("reported") || !has("default") || !has("quick") {
		t.Fatal("after 10 s: wrong hosts (a host must not drop out for 3 × 10 ms)")
	}
	c.Add(20 * time.Second) // 30 s: past 3 × 5 s and 3 × 10 s, but under MinStale
	if !has("reported") || !has("observed") || !has("quick") {
		t.Fatal("after 30 s: hosts dropped before MinStale")
	}
	c.Add(35 * time.Second) // 65 s: reported and quick silent for > MinStale
	if has("reported") || has("quick") || !has("observed") || !has("default") {
		t.Fatal("after 65 s: reported and quick should be stale, observed (last push 55 s ago) and default fresh")
	}
	c.Add(10 * time.Second) // 75 s: observed silent for 65 s
	if has("observed") || !has("default") {
		t.Fatal("after 75 s: observed should be stale")
	}
	c.Add(106 * time.Second) // default: 181 s > 3 × 1 min
	if has("default") || s.HostCount() != 0 {
		t.Fatalf("after 181 s: %d hosts left", s.HostCount())
	}
	usage("default") // back
	if !has("default") {
		t.Fatal("a host that pushes again is back")
	}
}

// TestHostsCaps: interfaces, mounts and sensors beyond the caps are left
// out (first ones by name kept) and counted.
func TestHostsCaps(t *testing.T) {
	c := newClock()
	s := newService(t, openStore(t), c, func(o *Options) { o.MaxInterfaces, o.MaxMounts, o.MaxSensors = 3, 2, 1 })
	u := sampleUsage(0)
	u.Interface = nil
	for i := range 10 {
		u.Interface = append(u.Interface, protocol.HMUsageNetwork{Name: fmt.Sprintf("veth%02d", 9-i), BytesSent: 1})
	}
	u.Partitions = append(u.Partitions, protocol.HMUsagePart{Name: "/var"}, protocol.HMUsagePart{Name: "/"}) // a duplicate
	s.HandleDynamic("a", dynMsg(&protocol.HMDynamicRep{Usage: u, Temperatures: []protocol.HMTemperature{{Name: "b"}, {Name: "a"}}}))
	out := scrape(t, hostsHandler(t, s))
	for _, w := range []string{
		`node_network_transmit_bytes_total{device="veth02",id="a"} 1`,
		`agentserver_host_capped_items{id="a",kind="interface"} 7`,
		`agentserver_host_capped_items{id="a",kind="mount"} 1`,
		`agentserver_host_capped_items{id="a",kind="sensor"} 1`,
		`node_hwmon_temp_celsius{id="a",sensor="a"} 0`,
	} {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("missing %s", w)
		}
	}
	if strings.Contains(out, `device="veth03"`) || strings.Contains(out, `mountpoint="/var"`) || strings.Contains(out, `sensor="b"`) {
		t.Error("capped items exported")
	}
	if n := strings.Count(out, "node_disk_read_bytes_per_second{"); n != 2 {
		t.Errorf("%d mounts exported, want 2", n)
	}
}

// realisticHost fills one host the way a metrics-agent does by default.
func realisticHost(s *Service, i int) {
	id := fmt.Sprintf("agent-20261124-%016x", i)
	s.HandleStatic(id, staticMsg(i))
	u := sampleUsage(i)
	for _, m := range []string{"/boot", "/var", "/var/lib/docker", "/tmp"} {
		u.Partitions = append(u.Partitions, protocol.HMUsagePart{Name: m, Used: 1 << 30, Free: 9 << 30, Usage: 10, InodeUsed: 10, InodeFree: 1000, ReadPerSecond: 12.5, WritePerSecond: 99})
	}
	u.Interface = append(u.Interface, protocol.HMUsageNetwork{Name: "docker0", BytesSent: 123456789, BytesRecv: 987654321, PacketsSent: 12345, PacketsRecv: 54321})
	temps := make([]protocol.HMTemperature, 0, 6)
	for k := range 6 {
		temps = append(temps, protocol.HMTemperature{Name: fmt.Sprintf("coretemp_core%d", k), Temp: 40 + protocol.F2(k)})
	}
	s.HandleDynamic(id, dynMsg(&protocol.HMDynamicRep{Usage: u, Temperatures: temps, Process: make([]protocol.HMProcess, 250)}))
}

// BenchmarkScrapeHosts1000 times a full scrape of /metrics/hosts through
// promhttp with 1,000 hosts (6 mounts, 3 interfaces, 6 sensors each).
func BenchmarkScrapeHosts1000(b *testing.B) {
	s := thousandHosts(b)
	h := hostsHandler(b, s)
	out := scrape(b, h)
	series := float64(strings.Count(out, "\n") - strings.Count(out, "# "))
	for _, enc := range []string{"identity", "gzip"} { // Prometheus asks for gzip
		b.Run(enc, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/metrics/hosts", nil)
				req.Header.Set("Accept-Encoding", enc)
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatal(rec.Code)
				}
			}
			b.ReportMetric(series, "series")
		})
	}
}

// nopStore is enough for a service that never flushes.
type nopStore struct{ Store }

// thousandHosts is a service (that never flushes) with 1,000 realistic
// hosts.
func thousandHosts(b *testing.B) *Service {
	s, err := New(Options{Store: nopStore{}, Now: newClock().Now})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		realisticHost(s, i)
	}
	return s
}

// BenchmarkIngestUsage is the cost of one usage push on the hub's reader
// goroutine (map updates and the host snapshot copy; the store write is
// batched elsewhere).
func BenchmarkIngestUsage(b *testing.B) {
	s := thousandHosts(b)
	msg := dynMsg(&protocol.HMDynamicRep{Usage: sampleUsage(1)})
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("agent-20261124-%016x", i)
	}
	i := 0
	for b.Loop() {
		s.HandleDynamic(ids[i%len(ids)], msg)
		i++
	}
}
