package protocol

import (
	"bytes"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json from the samples")

var (
	t0  = time.Date(2026, 11, 24, 13, 41, 28, 123456789, time.UTC)
	t1  = t0.Add(1500 * time.Millisecond)
	md5 = MD5{12, 250, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 255}
)

// samples holds one message per fixture file; every type this package knows
// has at least one.
var samples = []struct {
	name string
	msg  *Msg
}{
	{"error", &Msg{Type: TypeError, TID: "20261124-00001-9f2c0a1b2c3d4e5f", ErrMsg: "unsupported message type 55"}},
	{"error_kind", &Msg{Type: TypeError, TID: "t-dl", ErrMsg: "open /var/log/nope: no such file or directory", ErrKind: KindNotFound}},
	{"come", &Msg{Type: TypeCome, Payload: &Come{
		ID: "agent-20261124-0123456789abcdef", Name: "exec-agent", Version: "1.0.0",
		IP: net.ParseIP("192.168.1.20"), MAC: "52:54:00:12:34:56", HostName: "web-1",
		OS: "linux", Platform: "debian", PlatformVersion: "12.7", KernelVersion: "6.1.0-26-amd64",
		Arch: "amd64", CPU: "AMD EPYC 7B13", CPUCore: 2, Memory: 25769803776,
	}}},
	{"come_ext", &Msg{Type: TypeCome, Payload: &Come{
		ID: "agent-20261124-0123456789abcdef", Name: "exec-agent", Version: "1.0.0",
		IP: net.ParseIP("fd00::20"), OS: "windows", Arch: "arm64", CPUCore: 8, Memory: 1 << 34,
		Caps: []string{CapAuth, CapAck, CapBulk, CapStream, CapErrKind}, Secret: "s3cr3t-base64url", Labels: map[string]string{"env": "prod", "dc": "sh1"},
		Journal: "9c1f0e2ab34d5e6f",
	}}},
	{"handshake", &Msg{Type: TypeHandshake, Payload: &Handshake{OK: true, ID: "agent-20261124-0123456789abcdef"}}},
	{"handshake_conflict", &Msg{Type: TypeHandshake, Payload: &Handshake{ID: "web-1", Msg: MsgIDConflict, Redirect: []string{"10.0.0.2:13081", "10.0.0.3:13081"}}}},
	{"handshake_ext", &Msg{Type: TypeHandshake, Payload: &Handshake{OK: true, ID: "web-1", Caps: []string{CapAuth, CapAck}, Secret: "new-secret", Ack: 41}}},
	{"agent_info", &Msg{Type: TypeAgentInfo, Payload: &AgentInfo{
		Version: "1.0.0", GoVersion: "go1.26.0", CPUUsage: 0.25, MemoryUsage: 0.5, Threads: 9, Routines: 14,
		Startup: 1795959688, HeapInuse: 4 << 20, GC: map[string]float64{"0": 1e-05, "25": 2e-05, "50": 3e-05, "75": 4e-05, "100": 0.001},
		InPackets: 10, InBytes: 2048, OutPackets: 12, OutBytes: 4096, ReconnectCount: 1, ReadChanSize: 0, WriteChanSize: 3,
	}}},
	{"foo", &Msg{Type: TypeFoo, TID: "t-foo"}},
	{"bar", &Msg{Type: TypeBar, TID: "t-foo"}},
	{"exec", &Msg{Type: TypeExec, TID: "t-exec", Payload: &Exec{
		Cmd: "/bin/echo", Args: []string{"hello", "wide world"}, Timeout: 60, Auth: AuthSudo, User: "deploy",
		Pass: "$0$pw", WorkDir: "/srv", Env: []string{"LANG=C"}, DeferRM: "/tmp/script.sh",
	}}},
	{"exec_pipe", &Msg{Type: TypeExec, TID: "t-exec2", Payload: &Exec{Cmd: "true", Pipe: true}}},
	{"execd", &Msg{Type: TypeExecd, TID: "t-exec", Payload: &Execd{OK: true, Pid: 4242, Time: t0}}},
	{"execd_fail", &Msg{Type: TypeExecd, TID: "t-exec", Payload: &Execd{Msg: "exec: \"nope\": executable file not found in $PATH", Time: t0}}},
	{"execd_fail_kind", &Msg{Type: TypeExecd, TID: "t-exec", Payload: &Execd{Msg: "workdir: stat /srv/nope: no such file or directory", Time: t0, Kind: KindNotFound}}},
	{"ls_rep_fail_kind", &Msg{Type: TypeLsRep, TID: "t-ls", Payload: &LsRep{Dir: "etc", Msg: "invalid path \"etc\": not absolute", Kind: KindInvalid}}},
	{"exec_data", &Msg{Type: TypeExecData, TID: "t-exec", Seq: 7, Payload: &ExecData{Data: "aGVsbG8gd2lkZSB3b3JsZAo="}}},
	{"exec_done", &Msg{Type: TypeExecDone, TID: "t-exec", Seq: 8, Payload: &ExecDone{Code: 137, Time: t1}}},
	{"exec_kill", &Msg{Type: TypeExecKill, Payload: &ExecKill{Pid: 4242}}},
	{"exec_kill_task", &Msg{Type: TypeExecKill, TID: "t-kill", Payload: &ExecKill{TaskID: "t-exec"}}},
	{"ls_req", &Msg{Type: TypeLsReq, TID: "t-ls", Payload: &LsReq{Dir: "/etc"}}},
	{"ls_rep", &Msg{Type: TypeLsRep, TID: "t-ls", Payload: &LsRep{Dir: "/etc", OK: true, Files: []FileInfo{
		{Name: "ssl", Mod: os.ModeDir | 0o755, User: "root", Group: "root", Size: 4096, ModTime: t0},
		{Name: "localtime", Mod: os.ModeSymlink | 0o777, User: "root", Group: "root", Size: 33, ModTime: t1, IsLink: true, LinkDir: "/usr/share/zoneinfo/UTC"},
	}}}},
	{"upload", &Msg{Type: TypeUpload, TID: "t-up", Payload: &Upload{
		Dir: UploadTmpDir, Name: "hello.txt", Mod: 0o644, OwnUser: "www", OwnGroup: "www",
		Size: 6, MD5: md5, MD5Check: true, Data: "$0$aGVsbG8K",
	}}},
	{"upload_uri", &Msg{Type: TypeUpload, TID: "t-up2", Payload: &Upload{
		Dir: "/opt/app", Name: "big.tar", Auth: AuthSu, User: "app", Pass: "$0$pw", Mod: 0o600,
		Size: 209715200, MD5: md5, MD5Check: true, Token: "tok123", URI: "/api/file/transfer/tok123",
	}}},
	{"upload_rep", &Msg{Type: TypeUploadRep, TID: "t-up", Payload: &UploadRep{Dir: "/tmp/hello.txt", OK: true}}},
	{"download_req", &Msg{Type: TypeDownloadReq, TID: "t-down", Payload: &DownloadReq{Dir: "/var/log/syslog"}}},
	{"download_req_bulk", &Msg{Type: TypeDownloadReq, TID: "t-down2", Payload: &DownloadReq{
		Dir: "/var/log/syslog", URI: "/api/file/transfer/tok456", Token: "tok456", Offset: 1 << 20, Length: 4096,
	}}},
	{"download_rep", &Msg{Type: TypeDownloadRep, TID: "t-down", Payload: &DownloadRep{Dir: "/var/log/syslog", OK: true, Size: 70000, BlockSize: DefaultBlockSize, MD5: md5}}},
	{"download_rep_bulk", &Msg{Type: TypeDownloadRep, TID: "t-down2", Payload: &DownloadRep{Dir: "/var/log/syslog", OK: true, Size: 4096, MD5: md5, Total: 70000}}},
	{"download_data", &Msg{Type: TypeDownloadData, TID: "t-down", Payload: &DownloadData{Offset: 32768, Data: "$1$H4sIAAAAAAAA/2JgZAIEAAD//3+JVAgDAAAA"}}},
	{"download_error", &Msg{Type: TypeDownloadError, TID: "t-down", Payload: &DownloadError{Msg: "read /var/log/syslog: input/output error"}}},
	{"hm_static_req", &Msg{Type: TypeHMStaticReq, TID: "t-hs"}},
	{"hm_static_rep", &Msg{Type: TypeHMStaticRep, TID: "t-hs", Payload: &HMStatic{
		Time:   t0,
		Host:   HMHost{Name: "web-1", Uptime: 36 * time.Hour},
		OS:     HMOS{Name: "linux", PlatformName: "debian", PlatformVersion: "12.7", Install: t0.Add(-24 * time.Hour * 300), Startup: t0.Add(-36 * time.Hour)},
		Kernel: HMKernel{Version: "6.1.0-26-amd64", Arch: "x86_64"},
		CPU: HMCPU{Physical: 1, Logical: 2, Cores: []HMCore{
			{Processor: 0, Model: "AMD EPYC 7B13", Core: 0, Physical: 0, Mhz: 2449.998},
			{Processor: 1, Model: "AMD EPYC 7B13", Core: 1, Cores: 1, Mhz: 2450.004},
		}},
		Memory:      HMMemory{Physical: 25769803776, Swap: 1 << 30},
		Disks:       []HMDisk{{Model: "PersistentDisk", Total: 107374182400, Type: "hdd", Partitions: []string{"/", "/boot"}}},
		Partitions:  []HMPartition{{Mount: "/", FSType: "ext4", Opts: []string{"rw", "relatime"}, Total: 105089261568, Inodes: 6553600}},
		Nameservers: []string{"10.0.0.1", "8.8.8.8"},
		Gateway:     "10.0.0.1",
		Interface:   []HMInterface{{Index: 2, Name: "eth0", MTU: 1460, Flags: []string{"up", "broadcast", "multicast"}, MAC: "42:01:0a:00:00:14", Addrs: []string{"10.0.0.20/32", "fe80::4001:aff:fe00:14/64"}}},
		User:        []HMUser{{Name: "root", ID: "0", GID: "0"}, {Name: "deploy", ID: "1000", GID: "1000"}},
	}}},
	{"hm_dynamic_req", &Msg{Type: TypeHMDynamicReq, TID: "t-hd", Payload: &HMDynamicReq{Req: []int{HMReqUsage, HMReqProcess, HMReqConnections, HMReqTemperatures}, Top: 10, AConns: []string{"tcp4", "tcp6"}}}},
	{"hm_dynamic_rep", &Msg{Type: TypeHMDynamicRep, TID: "t-hd", Payload: &HMDynamicRep{
		Begin: t0, End: t1,
		Usage: &HMUsage{
			CPU:        HMUsageCPU{Usage: 12.3456, Load1: 0.5, Load5: 0.25, Load15: 0.125},
			Memory:     HMUsageMemory{Used: 1 << 30, Free: 2 << 30, Available: 3 << 30, Usage: 33.333333, SwapUsed: 0, SwapFree: 1 << 30},
			Partitions: []HMUsagePart{{Name: "/", Used: 1 << 33, Free: 1 << 34, Usage: 33.3333, InodeUsed: 100000, InodeFree: 6453600, InodeUsage: 1.5259, ReadPerSecond: 1024.555, WritePerSecond: 2048, IOPSInProgress: 1}},
			Interface:  []HMUsageNetwork{{Name: "eth0", BytesSent: 123456, BytesRecv: 654321, PacketsSent: 100, PacketsRecv: 200}},
		},
		Process:      []HMProcess{{ID: 4242, ParentID: 1, User: "root", CPUUsage: 1.239, RSS: 15 << 20, VMS: 1 << 30, MemoryUsage: 0.06, Cmd: []string{"/usr/bin/exec-agent", "-conf", "/etc/exec-agent.conf"}, Listen: []uint32{13082}, Conns: 2}},
		Connections:  []HMConnection{{FD: 7, Pid: 4242, Type: "tcp4", Local: "10.0.0.20:40000", Remote: "10.0.0.2:13081", Status: "ESTABLISHED"}},
		Temperatures: []HMTemperature{{Name: "coretemp_core0", Temp: 47.5}},
	}}},
	{"hm_query_collect", &Msg{Type: TypeHMQueryCollect, TID: "t-hq"}},
	{"hm_collect_status", &Msg{Type: TypeHMCollectStatus, TID: "t-hq", Payload: &HMStatusRep{
		Jobs: []HMJob{{Name: "static", Interval: 24 * time.Hour}, {Name: "usage", Interval: 5 * time.Second}}, AConns: []string{"tcp4"},
	}}},
	{"hm_change_collect_status", &Msg{Type: TypeHMChangeCollectStatus, Payload: &HMChangeStatus{Jobs: []string{"static", "usage"}}}},
	{"hm_agent_status", &Msg{Type: TypeHMAgentStatus, Payload: &HMAgentStatus{Jobs: []HMAgentJob{{Name: "usage", Interval: 5, BytesSent: 123456, Count: 720}}, Warnings: 2}}},
	{"log_ls_req", &Msg{Type: TypeLogLsReq, TID: "t-log"}},
	{"log_ls_rep", &Msg{Type: TypeLogLsRep, TID: "t-log", Payload: &LogLs{Files: []LogFile{{Name: "exec-agent.log", Size: 12345, ModTime: t0}, {Name: "exec-agent.log.1", Size: 10485760, ModTime: t1}}}}},
	{"log_download_req", &Msg{Type: TypeLogDownloadReq, TID: "t-logd", Payload: &LogDownloadReq{Files: []string{"exec-agent.log", "exec-agent.log.1"}}}},
	{"log_download_info", &Msg{Type: TypeLogDownloadInfo, TID: "t-logd", Payload: &LogDownloadInfo{OK: true, Size: 4000, BlockSize: DefaultBlockSize, MD5: md5}}},
	{"log_download_data", &Msg{Type: TypeLogDownloadData, TID: "t-logd", Payload: &LogDownloadData{Offset: 0, Data: "$2$KLUv/QQAwQAAZXhlYy1hZ2VudC5sb2cgY29udGVudHMKvdtGZA=="}}},
	{"ack", &Msg{Type: TypeAck, Payload: &Ack{Seq: 8}}},
	{"ps_req", &Msg{Type: TypePsReq, TID: "t-ps"}},
	{"ps_rep", &Msg{Type: TypePsRep, TID: "t-ps", Payload: &Ps{Tasks: []PsTask{{TaskID: "t-exec", Pid: 4242, Begin: t0}}}}},
	{"exec_kill_rep", &Msg{Type: TypeExecKillRep, TID: "t-kill", Payload: &ExecKillRep{OK: true, TaskID: "t-exec", Pid: 4242}}},
	{"pty_open", &Msg{Type: TypePtyOpen, TID: "t-pty", Payload: &PtyOpen{
		Cmd: "top", User: "deploy", Env: []string{"TERM=xterm-256color"}, Cols: 120, Rows: 40, Window: 16,
	}}},
	{"pty_open_login", &Msg{Type: TypePtyOpen, TID: "t-pty2", Payload: &PtyOpen{Cols: 80, Rows: 24}}},
	{"pty_opened", &Msg{Type: TypePtyOpened, TID: "t-pty", Payload: &PtyOpened{OK: true, Pid: 4242, Window: 16}}},
	{"pty_opened_fail", &Msg{Type: TypePtyOpened, TID: "t-pty", Payload: &PtyOpened{Msg: "busy: 16 tasks running, limit 16"}}},
	{"pty_opened_invalid", &Msg{Type: TypePtyOpened, TID: "t-pty", Payload: &PtyOpened{Msg: `invalid exec request: user "-x": starts with '-'`, Kind: KindInvalid}}},
	{"pty_input", &Msg{Type: TypePtyInput, TID: "t-pty", Payload: NewPtyData([]byte("echo hi\r"))}},
	{"pty_output", &Msg{Type: TypePtyOutput, TID: "t-pty", Payload: NewPtyData([]byte("echo hi\r\nhi\r\n$ "))}},
	{"pty_resize", &Msg{Type: TypePtyResize, TID: "t-pty", Payload: &PtyResize{Cols: 132, Rows: 43}}},
	{"pty_ack", &Msg{Type: TypePtyAck, TID: "t-pty", Payload: &PtyAck{N: 8}}},
	{"pty_exit", &Msg{Type: TypePtyExit, TID: "t-pty", Payload: &PtyExit{Code: 130}}},
	{"pty_exit_idle", &Msg{Type: TypePtyExit, TID: "t-pty", Payload: &PtyExit{Code: 129, Msg: "idle timeout: no input or output for 30m0s"}}},
	{"pty_close", &Msg{Type: TypePtyClose, TID: "t-pty"}},
	{"install_run", &Msg{Type: TypeInstallRun, TID: "t-inst", Payload: &InstallRun{
		URL: "https://repo.example.com/app_1.2.3_amd64.deb", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Timeout: 300, Auth: AuthSudo, User: "deploy", Pass: "$0$pw", Deps: true,
	}}},
	{"install_run_uri", &Msg{Type: TypeInstallRun, TID: "t-inst2", Payload: &InstallRun{
		URI: "app-1.2.3.tar.gz", Transfer: "/api/transfer/0123456789abcdef", Token: "tok789",
		SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Dir: "/opt/app",
	}}},
	{"install_action", &Msg{Type: TypeInstallAction, TID: "t-inst", Seq: 9, Payload: &InstallAction{N: 0, Action: InstallActDownload, Name: "https://repo.example.com/app_1.2.3_amd64.deb", Time: 1795959688, OK: true}}},
	{"install_done", &Msg{Type: TypeInstallDone, TID: "t-inst", Seq: 11, Payload: &InstallStatus{Done: true, Actions: []InstallAction{
		{N: 0, Action: InstallActDownload, Name: "https://repo.example.com/app_1.2.3_amd64.deb", Time: 1795959688, OK: true},
		{N: 1, Action: InstallActInstall, Name: "https://repo.example.com/app_1.2.3_amd64.deb", Time: 1795959691, Msg: "exit code 1: dpkg: error processing archive"},
		{N: 2, Action: InstallActDone, Name: "t-inst", Time: 1795959691, Msg: "exit code 1: dpkg: error processing archive"},
	}}}},
	{"install_done_restarted", &Msg{Type: TypeInstallDone, TID: "t-inst", Payload: &InstallStatus{Done: true, Restarted: true, Actions: []InstallAction{
		{N: 0, Action: InstallActDownload, Name: "app-1.2.3.deb", Time: 1795959688, OK: true},
		{N: 1, Action: InstallActDone, Name: "t-inst", Time: 1795959700, Msg: "interrupted: the agent stopped while installing app-1.2.3.deb (downloaded, install not finished)"},
	}}}},
	{"install_status_req", &Msg{Type: TypeInstallStatusReq, TID: "t-inst"}},
	{"upgrade", &Msg{Type: TypeUpgrade, TID: "t-upg", Payload: &Upgrade{
		URI: "/api/transfer/5f1c", Token: "tok123", Size: 9437184,
		SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Sig:    "c2lnbmF0dXJlIG9mIDY0IGJ5dGVz", Task: "task-20261124-0001", Deadline: 120, Stay: 10,
	}}},
	{"upgrade_rep", &Msg{Type: TypeUpgradeRep, TID: "t-upg", Payload: &UpgradeRep{OK: true, From: "1.4.0"}}},
	{"upgrade_rep_refused", &Msg{Type: TypeUpgradeRep, TID: "t-upg", Payload: &UpgradeRep{Msg: "binary is not signed", From: "1.4.0", Kind: KindInvalid}}},
}

func fixturePath(name string) string { return filepath.Join("testdata", name+".json") }

func compact(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact: %v", err)
	}
	return buf.Bytes()
}

// TestGolden: each sample encodes to its fixture, and each fixture decodes
// and re-encodes to itself.
func TestGolden(t *testing.T) {
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			enc, err := Encode(s.msg)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			path := fixturePath(s.name)
			if *update {
				var buf bytes.Buffer
				if err := json.Indent(&buf, enc, "", "  "); err != nil {
					t.Fatal(err)
				}
				buf.WriteByte('\n')
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			want := compact(t, raw)
			if !bytes.Equal(enc, want) {
				t.Errorf("Encode differs from %s\n got: %s\nwant: %s", path, enc, want)
			}
			m, err := Decode(raw)
			if err != nil {
				t.Fatalf("Decode(%s): %v", path, err)
			}
			again, err := Encode(m)
			if err != nil {
				t.Fatalf("re-Encode: %v", err)
			}
			if !bytes.Equal(again, want) {
				t.Errorf("decode → encode differs from %s\n got: %s\nwant: %s", path, again, want)
			}
		})
	}
}

// TestEveryTypeHasFixture fails when a type is added without a sample.
func TestEveryTypeHasFixture(t *testing.T) {
	seen := map[Type]bool{}
	for _, s := range samples {
		seen[s.msg.Type] = true
	}
	for typ := range registry().types {
		if !seen[typ] {
			t.Errorf("type %d (%s) has no golden sample", int(typ), typ)
		}
	}
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(samples) {
		t.Errorf("testdata has %d fixtures, samples has %d: remove stale files", len(files), len(samples))
	}
}
