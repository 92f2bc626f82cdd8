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

// typeInfo describes a known type: its name and the payload key it requires
// ("" when the type has no payload).
type typeInfo struct {
	name string
	key  string
}

var types = map[Type]typeInfo{
	TypeError:     {"error", ""},
	TypeCome:      {"come", "come"},
	TypeHandshake: {"handshake", "handshake"},
	TypeAgentInfo: {"agent_info", "ai"},
	TypeFoo:       {"foo", ""},
	TypeBar:       {"bar", ""},

	TypeExec:     {"exec", "exec"},
	TypeExecd:    {"execd", "execd"},
	TypeExecData: {"exec_data", "exec_data"},
	TypeExecDone: {"exec_done", "exec_done"},
	TypeExecKill: {"exec_kill", "exec_kill"},

	TypeLsReq:         {"ls_req", "ls_req"},
	TypeLsRep:         {"ls_rep", "ls_rep"},
	TypeUpload:        {"upload", "upload"},
	TypeUploadRep:     {"upload_rep", "upload_rep"},
	TypeDownloadReq:   {"download_req", "download_req"},
	TypeDownloadRep:   {"download_rep", "download_rep"},
	TypeDownloadData:  {"download_data", "download_data"},
	TypeDownloadError: {"download_error", "download_error"},

	TypeHMStaticReq:           {"hm_static_req", ""},
	TypeHMStaticRep:           {"hm_static_rep", "hm_static"},
	TypeHMDynamicReq:          {"hm_dynamic_req", "hm_dynamic_req"},
	TypeHMDynamicRep:          {"hm_dynamic_rep", "hm_dynamic_rep"},
	TypeHMQueryCollect:        {"hm_query_collect", ""},
	TypeHMCollectStatus:       {"hm_collect_status", "hm_status_rep"},
	TypeHMChangeCollectStatus: {"hm_change_collect_status", "hm_change_status"},
	TypeHMAgentStatus:         {"hm_agent_status", "hm_agent_status"},

	TypeLogLsReq:        {"log_ls_req", ""},
	TypeLogLsRep:        {"log_ls_rep", "ls_log"},
	TypeLogDownloadReq:  {"log_download_req", "log_dreq"},
	TypeLogDownloadInfo: {"log_download_info", "log_dinfo"},
	TypeLogDownloadData: {"log_download_data", "log_ddata"},

	TypeAck:         {"ack", "ack"},
	TypePsReq:       {"ps_req", ""},
	TypePsRep:       {"ps_rep", "ps"},
	TypeExecKillRep: {"exec_kill_rep", "exec_kill_rep"},

	TypePtyOpen:   {"pty_open", "pty_open"},
	TypePtyOpened: {"pty_opened", "pty_opened"},
	TypePtyInput:  {"pty_input", "pty_data"},
	TypePtyOutput: {"pty_output", "pty_data"},
	TypePtyResize: {"pty_resize", "pty_resize"},
	TypePtyAck:    {"pty_ack", "pty_ack"},
	TypePtyExit:   {"pty_exit", "pty_exit"},
	TypePtyClose:  {"pty_close", ""},
}

// String returns the protocol name of t ("exec", "log_ls_req", …), or
// "type(N)" for a number this package does not know.
func (t Type) String() string {
	if ti, ok := types[t]; ok {
		return ti.name
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Known reports whether this package defines t.
func (t Type) Known() bool {
	_, ok := types[t]
	return ok
}

// PayloadKey returns the envelope key that carries t's payload, "" when t has
// no payload or is unknown.
func (t Type) PayloadKey() string { return types[t].key }
