package install

// Action kinds of the action log (seed §4.1.1.2).
const (
	ActDownload = "download" // the package was fetched; Name: its URL or path
	ActInstall  = "install"  // the package was installed or unpacked; Name: its URL or path
	ActFile     = "file"     // a file was written; Name: where
	ActDone     = "done"     // the install ended; OK: whether it succeeded
)

// Action is one line of the action log, shaped as the seed's status body.
type Action struct {
	Action string `json:"action"`
	Name   string `json:"name"`
	// Time is when the action ended, unix seconds.
	Time int64  `json:"time"`
	OK   bool   `json:"ok"`
	Msg  string `json:"msg"`
}

// Status is an install's state as /install/status returns it.
type Status struct {
	Done    bool     `json:"done"`
	Actions []Action `json:"actions"`
}
