package protocol

import "strconv"

// Type is the message type number carried in the envelope's "type" key.
type Type int

// v1 message types. S = server, A = agent.
const (
	TypeError     Type = 0 // both: errmsg for the request tid
	TypeCome      Type = 1 // A→S: come
	TypeHandshake Type = 2 // S→A: handshake
	TypeAgentInfo Type = 7 // A→S push: ai
	TypeFoo       Type = 8 // S→A: example-agent echo request, no payload
	TypeBar       Type = 9 // A→S: example-agent echo reply, no payload

	TypeExec     Type = 10 // S→A: exec
	TypeExecd    Type = 11 // A→S: execd
	TypeExecData Type = 12 // A→S: exec_data
	TypeExecDone Type = 13 // A→S: exec_done
	TypeExecKill Type = 14 // S→A: exec_kill

	TypeLsReq         Type = 20 // S→A: ls_req
	TypeLsRep         Type = 21 // A→S: ls_rep
	TypeUpload        Type = 22 // S→A: upload
	TypeUploadRep     Type = 23 // A→S: upload_rep
	TypeDownloadReq   Type = 24 // S→A: download_req
	TypeDownloadRep   Type = 25 // A→S: download_rep
	TypeDownloadData  Type = 26 // A→S: download_data
	TypeDownloadError Type = 27 // A→S: download_error

	TypeHMStaticReq           Type = 30 // S→A: no payload
	TypeHMStaticRep           Type = 31 // A→S (also push): hm_static
	TypeHMDynamicReq          Type = 32 // S→A: hm_dynamic_req
	TypeHMDynamicRep          Type = 33 // A→S (also push): hm_dynamic_rep
	TypeHMQueryCollect        Type = 34 // S→A: no payload
	TypeHMCollectStatus       Type = 35 // A→S: hm_status_rep
	TypeHMChangeCollectStatus Type = 36 // S→A: hm_change_status, no reply
	TypeHMAgentStatus         Type = 37 // A→S push: hm_agent_status

	TypeLogLsReq        Type = 10000 // S→A: no payload
	TypeLogLsRep        Type = 10001 // A→S: ls_log
	TypeLogDownloadReq  Type = 10002 // S→A: log_dreq
	TypeLogDownloadInfo Type = 10003 // A→S: log_dinfo
	TypeLogDownloadData Type = 10004 // A→S: log_ddata
)

// Extension message types (range 100–199). Send them only to a peer that
// announced the capability named in the comment.
const (
	TypeAck         Type = 100 // S→A, CapAck: ack (cumulative)
	TypePsReq       Type = 101 // S→A, CapStream: no payload
	TypePsRep       Type = 102 // A→S, CapStream: ps
	TypeExecKillRep Type = 103 // A→S, CapStream: exec_kill_rep, answers a 14 that has a tid

	TypePtyOpen   Type = 104 // S→A, CapPty: pty_open, starts a session (tid names it)
	TypePtyOpened Type = 105 // A→S, CapPty: pty_opened
	TypePtyInput  Type = 106 // S→A, CapPty: pty_data, keystrokes
	TypePtyOutput Type = 107 // A→S, CapPty: pty_data, terminal output
	TypePtyResize Type = 108 // S→A, CapPty: pty_resize
	TypePtyAck    Type = 109 // both, CapPty: pty_ack, returns data credits
	TypePtyExit   Type = 110 // A→S, CapPty: pty_exit, the session's last message
	TypePtyClose  Type = 111 // S→A, CapPty: no payload, ends the session
)

// The built-in types, registered in the order of the constants. A type
// added here needs its constant above, its payload struct, a golden sample
// (golden_test.go) and its row in docs/protocol.md; nothing else in this
// package lists types.
func init() {
	RegisterEmpty(TypeError, "error")
	Register[Come](TypeCome, "come", "come")
	Register[Handshake](TypeHandshake, "handshake", "handshake")
	Register[AgentInfo](TypeAgentInfo, "agent_info", "ai")
	RegisterEmpty(TypeFoo, "foo")
	RegisterEmpty(TypeBar, "bar")

	Register[Exec](TypeExec, "exec", "exec")
	Register[Execd](TypeExecd, "execd", "execd")
	Register[ExecData](TypeExecData, "exec_data", "exec_data")
	Register[ExecDone](TypeExecDone, "exec_done", "exec_done")
	Register[ExecKill](TypeExecKill, "exec_kill", "exec_kill")

	Register[LsReq](TypeLsReq, "ls_req", "ls_req")
	Register[LsRep](TypeLsRep, "ls_rep", "ls_rep")
	Register[Upload](TypeUpload, "upload", "upload")
	Register[UploadRep](TypeUploadRep, "upload_rep", "upload_rep")
	Register[DownloadReq](TypeDownloadReq, "download_req", "download_req")
	Register[DownloadRep](TypeDownloadRep, "download_rep", "download_rep")
	Register[DownloadData](TypeDownloadData, "download_data", "download_data")
	Register[DownloadError](TypeDownloadError, "download_error", "download_error")

	RegisterEmpty(TypeHMStaticReq, "hm_static_req")
	Register[HMStatic](TypeHMStaticRep, "hm_static_rep", "hm_static")
	Register[HMDynamicReq](TypeHMDynamicReq, "hm_dynamic_req", "hm_dynamic_req")
	Register[HMDynamicRep](TypeHMDynamicRep, "hm_dynamic_rep", "hm_dynamic_rep")
	RegisterEmpty(TypeHMQueryCollect, "hm_query_collect")
	Register[HMStatusRep](TypeHMCollectStatus, "hm_collect_status", "hm_status_rep")
	Register[HMChangeStatus](TypeHMChangeCollectStatus, "hm_change_collect_status", "hm_change_status")
	Register[HMAgentStatus](TypeHMAgentStatus, "hm_agent_status", "hm_agent_status")

	RegisterEmpty(TypeLogLsReq, "log_ls_req")
	Register[LogLs](TypeLogLsRep, "log_ls_rep", "ls_log")
	Register[LogDownloadReq](TypeLogDownloadReq, "log_download_req", "log_dreq")
	Register[LogDownloadInfo](TypeLogDownloadInfo, "log_download_info", "log_dinfo")
	Register[LogDownloadData](TypeLogDownloadData, "log_download_data", "log_ddata")

	Register[Ack](TypeAck, "ack", "ack")
	RegisterEmpty(TypePsReq, "ps_req")
	Register[Ps](TypePsRep, "ps_rep", "ps")
	Register[ExecKillRep](TypeExecKillRep, "exec_kill_rep", "exec_kill_rep")

	Register[PtyOpen](TypePtyOpen, "pty_open", "pty_open")
	Register[PtyOpened](TypePtyOpened, "pty_opened", "pty_opened")
	Register[PtyData](TypePtyInput, "pty_input", "pty_data")
	Register[PtyData](TypePtyOutput, "pty_output", "pty_data")
	Register[PtyResize](TypePtyResize, "pty_resize", "pty_resize")
	Register[PtyAck](TypePtyAck, "pty_ack", "pty_ack")
	Register[PtyExit](TypePtyExit, "pty_exit", "pty_exit")
	RegisterEmpty(TypePtyClose, "pty_close")
}

// Accessors of the built-in payloads: nil when m carries another one.

func (m *Msg) Come() *Come                     { return PayloadOf[Come](m) }
func (m *Msg) Handshake() *Handshake           { return PayloadOf[Handshake](m) }
func (m *Msg) AI() *AgentInfo                  { return PayloadOf[AgentInfo](m) }
func (m *Msg) Exec() *Exec                     { return PayloadOf[Exec](m) }
func (m *Msg) Execd() *Execd                   { return PayloadOf[Execd](m) }
func (m *Msg) ExecData() *ExecData             { return PayloadOf[ExecData](m) }
func (m *Msg) ExecDone() *ExecDone             { return PayloadOf[ExecDone](m) }
func (m *Msg) ExecKill() *ExecKill             { return PayloadOf[ExecKill](m) }
func (m *Msg) LsReq() *LsReq                   { return PayloadOf[LsReq](m) }
func (m *Msg) LsRep() *LsRep                   { return PayloadOf[LsRep](m) }
func (m *Msg) Upload() *Upload                 { return PayloadOf[Upload](m) }
func (m *Msg) UploadRep() *UploadRep           { return PayloadOf[UploadRep](m) }
func (m *Msg) DownloadReq() *DownloadReq       { return PayloadOf[DownloadReq](m) }
func (m *Msg) DownloadRep() *DownloadRep       { return PayloadOf[DownloadRep](m) }
func (m *Msg) DownloadData() *DownloadData     { return PayloadOf[DownloadData](m) }
func (m *Msg) DownloadError() *DownloadError   { return PayloadOf[DownloadError](m) }
func (m *Msg) HMStatic() *HMStatic             { return PayloadOf[HMStatic](m) }
func (m *Msg) HMDynamicReq() *HMDynamicReq     { return PayloadOf[HMDynamicReq](m) }
func (m *Msg) HMDynamicRep() *HMDynamicRep     { return PayloadOf[HMDynamicRep](m) }
func (m *Msg) HMStatusRep() *HMStatusRep       { return PayloadOf[HMStatusRep](m) }
func (m *Msg) HMChangeStatus() *HMChangeStatus { return PayloadOf[HMChangeStatus](m) }
func (m *Msg) HMAgentStatus() *HMAgentStatus   { return PayloadOf[HMAgentStatus](m) }
func (m *Msg) LogLs() *LogLs                   { return PayloadOf[LogLs](m) }
func (m *Msg) LogDReq() *LogDownloadReq        { return PayloadOf[LogDownloadReq](m) }
func (m *Msg) LogDInfo() *LogDownloadInfo      { return PayloadOf[LogDownloadInfo](m) }
func (m *Msg) LogDData() *LogDownloadData      { return PayloadOf[LogDownloadData](m) }
func (m *Msg) Ack() *Ack                       { return PayloadOf[Ack](m) }
func (m *Msg) Ps() *Ps                         { return PayloadOf[Ps](m) }
func (m *Msg) ExecKillRep() *ExecKillRep       { return PayloadOf[ExecKillRep](m) }
func (m *Msg) PtyOpen() *PtyOpen               { return PayloadOf[PtyOpen](m) }
func (m *Msg) PtyOpened() *PtyOpened           { return PayloadOf[PtyOpened](m) }
func (m *Msg) PtyData() *PtyData               { return PayloadOf[PtyData](m) }
func (m *Msg) PtyResize() *PtyResize           { return PayloadOf[PtyResize](m) }
func (m *Msg) PtyAck() *PtyAck                 { return PayloadOf[PtyAck](m) }
func (m *Msg) PtyExit() *PtyExit               { return PayloadOf[PtyExit](m) }

// String returns the protocol name of t ("exec", "log_ls_req", …), or
// "type(N)" for a number this package does not know.
func (t Type) String() string {
	if ti, ok := registry().types[t]; ok {
		return ti.name
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Known reports whether t is registered (built in, or by Register).
func (t Type) Known() bool {
	_, ok := registry().types[t]
	return ok
}

// PayloadKey returns the envelope key that carries t's payload, "" when t has
// no payload or is unknown.
func (t Type) PayloadKey() string { return registry().types[t].key }
