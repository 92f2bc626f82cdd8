package protocol

// Agent self-update (CapUpgrade, types 120–121). The server offers a new
// binary of the agent; the agent fetches it from a one-shot transfer URL,
// checks its size, sha256 and release signature, swaps it in, starts its
// watchdog, answers, and restarts (docs/upgrade.md).
//
//	S → A  upgrade      tid=T  {uri, token, size, sha256, sig, task, deadline, stay}
//	A → S  upgrade_rep  tid=T  {ok, msg, from}
//
// After an ok reply the agent goes away and comes back on the new binary
// (or, rolled back by its watchdog, on the old one): the server follows
// the outcome through the version the agent announces in come.

// CapUpgrade: upgrade, upgrade_rep (120–121).
const CapUpgrade = "upgrade.v1"

// Upgrade message types.
const (
	TypeUpgrade    Type = 120 // S→A, CapUpgrade: upgrade
	TypeUpgradeRep Type = 121 // A→S, CapUpgrade: upgrade_rep
)

func init() {
	Register[Upgrade](TypeUpgrade, "upgrade", "upgrade")
	Register[UpgradeRep](TypeUpgradeRep, "upgrade_rep", "upgrade_rep")
}

// Accessors of the upgrade payloads.
func (m *Msg) Upgrade() *Upgrade       { return PayloadOf[Upgrade](m) }
func (m *Msg) UpgradeRep() *UpgradeRep { return PayloadOf[UpgradeRep](m) }

// Upgrade offers a new binary (type 120, key "upgrade"). The agent GETs
// URI with header X-Token: Token.
type Upgrade struct {
	URI    string `json:"uri"`
	Token  string `json:"token"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
	// Sig is the release signature (the text of the package's .sig file:
	// base64 ed25519 over the sha256); empty when the package has none.
	Sig  string `json:"sig,omitempty"`
	Task string `json:"task,omitempty"` // the fleet task, for the agent's log
	// Deadline (seconds): the new binary must connect and stay up Stay
	// seconds within it, counted from the swap, or the watchdog rolls back.
	Deadline int `json:"deadline"`
	Stay     int `json:"stay"`
}

// UpgradeRep answers an upgrade (type 121, key "upgrade_rep"): OK once the
// new binary is in place and the restart follows; otherwise Msg says why
// nothing was swapped.
type UpgradeRep struct {
	OK   bool    `json:"ok"`
	Msg  string  `json:"msg,omitempty"`
	From string  `json:"from,omitempty"` // the version that answers
	Kind ErrKind `json:"kind,omitempty"`
}
