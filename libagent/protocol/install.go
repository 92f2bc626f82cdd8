package protocol

// Software installs on the agent's host (CapInstall, types 112–115): the
// seed's /install/run and /install/status as messages. The tid of
// install_run names the install; every message about it carries that tid.
//
//	S → A  install_run     tid=I  {url | uri+transfer+token, sha256, dir, timeout, auth, user, pass, …}
//	A → S  install_action  tid=I  {n:0, action:"download", name, time, ok, msg}   (journaled, ack.v1)
//	A → S  install_action  tid=I  {n:1, action:"install", …}
//	A → S  install_done    tid=I  {done:true, actions:[…every action, the done one last…]}
//
// install_action streams the action log as it grows; install_done ends it
// with the whole log, so a receiver that missed actions (or an agent that
// restarted mid-install and reports from its on-disk journal, Restarted
// true) still ends with the complete log. Both are journaled messages when
// ack.v1 is in use. install_status_req asks for the log of an install the
// agent still holds (answered by install_done, with Done false while it
// runs).

// CapInstall: install_run, install_action, install_done,
// install_status_req (112–115).
const CapInstall = "install.v1"

// Install message types.
const (
	TypeInstallRun       Type = 112 // S→A, CapInstall: install_run
	TypeInstallAction    Type = 113 // A→S, CapInstall: install_action, one action of the log
	TypeInstallDone      Type = 114 // A→S, CapInstall: install_done, the whole log (the end when Done)
	TypeInstallStatusReq Type = 115 // S→A, CapInstall: no payload; answered by install_done
)

func init() {
	Register[InstallRun](TypeInstallRun, "install_run", "install_run")
	Register[InstallAction](TypeInstallAction, "install_action", "install_action")
	Register[InstallStatus](TypeInstallDone, "install_done", "install_done")
	RegisterEmpty(TypeInstallStatusReq, "install_status_req")
}

// Accessors of the install payloads.
func (m *Msg) InstallRun() *InstallRun       { return PayloadOf[InstallRun](m) }
func (m *Msg) InstallAction() *InstallAction { return PayloadOf[InstallAction](m) }
func (m *Msg) InstallDone() *InstallStatus   { return PayloadOf[InstallStatus](m) }

// Action kinds of the action log (the seed's).
const (
	InstallActDownload = "download"
	InstallActInstall  = "install"
	InstallActFile     = "file"
	InstallActDone     = "done"
)

// InstallRun starts an install (type 112, key "install_run"). Exactly one
// source: URL (downloaded by the agent), or URI, a package of the server's
// repository, which the agent GETs from Transfer (a one-shot path on the
// server, header X-Token: Token, as an upload's uri).
type InstallRun struct {
	URL      string `json:"url,omitempty"`
	URI      string `json:"uri,omitempty"`      // the repository package's name
	Transfer string `json:"transfer,omitempty"` // where the agent GETs URI's bytes
	Token    string `json:"token,omitempty"`
	// SHA256 (64 hex digits) is verified before anything is installed;
	// the server always sets it for URI.
	SHA256 string `json:"sha256,omitempty"`
	// Name is the package's file name when the URL does not end in it;
	// Kind ("deb", "rpm", "tar", "tar.gz", "tar.bz2", "zip", "msi", "exe")
	// overrides both.
	Name string `json:"name,omitempty"`
	Kind string `json:"kind,omitempty"`
	// Dir is where archives are unpacked (required for them) and msi/exe
	// install; deb and rpm ignore it.
	Dir string `json:"dir,omitempty"`
	// Timeout bounds the whole install, seconds; ≤ 0: 300.
	Timeout int `json:"timeout,omitempty"`
	// Auth ("", "su", "sudo"), User and Pass (exec's encoding) run the
	// installer as User.
	Auth string `json:"auth,omitempty"`
	User string `json:"user,omitempty"`
	Pass string `json:"pass,omitempty"`
	// Deps installs with apt-get / dnf / yum so that dependencies come too.
	Deps bool `json:"deps,omitempty"`
}

// InstallAction is one action of an install's log (type 113, key
// "install_action"; and the elements of InstallStatus.Actions). Every key
// is always present, as in the seed's status body.
type InstallAction struct {
	// N is the action's position in the log, from 0: a receiver stores
	// each position once (a replayed action is a duplicate).
	N      int    `json:"n"`
	Action string `json:"action"` // download, install, file, done
	Name   string `json:"name"`
	Time   int64  `json:"time"` // unix seconds
	OK     bool   `json:"ok"`
	Msg    string `json:"msg"`
}

// InstallStatus is an install's whole action log (type 114, key
// "install_done"): the end of an install when Done, or the answer to
// install_status_req.
type InstallStatus struct {
	Done    bool            `json:"done"`
	Actions []InstallAction `json:"actions"`
	// Restarted: sent by an agent that restarted, from its journal (an
	// install cut short ends with a done action that says where).
	Restarted bool `json:"restarted,omitempty"`
	// Unknown: the agent holds no log of this install (install_status_req).
	Unknown bool `json:"unknown,omitempty"`
}
