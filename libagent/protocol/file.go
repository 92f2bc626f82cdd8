package protocol

import (
	"os"
	"time"
)

// LsReq lists a directory (type 20).
type LsReq struct {
	Dir string `json:"dir"`
}

// FileInfo is one entry of LsRep.
type FileInfo struct {
	Name    string      `json:"name"`
	Mod     os.FileMode `json:"mod"` // type bits included: dir 1<<31, symlink 1<<27
	User    string      `json:"user"`
	Group   string      `json:"group"`
	Size    uint64      `json:"size"`
	ModTime time.Time   `json:"mod_time"`
	IsLink  bool        `json:"is_link"`
	LinkDir string      `json:"link_dir"`
}

// LsRep answers LsReq (type 21).
type LsRep struct {
	Dir   string     `json:"dir"`
	OK    bool       `json:"ok"`
	Msg   string     `json:"msg,omitempty"`
	Files []FileInfo `json:"files,omitempty"`
	Kind  ErrKind    `json:"kind,omitempty"` // classifies Msg (CapErrKind only)
}

// UploadTmpDir as Upload.Dir means the OS temp directory.
const UploadTmpDir = "$$TMP$$"

// MaxInlineUpload is the largest file the server sends inline in
// Upload.Data; larger ones go by URI + Token.
const MaxInlineUpload = 1 << 20

// Upload writes a file on the agent (type 22): inline in Data, or fetched
// with GET <scheme>://<server><URI> and header "X-Token: <Token>".
type Upload struct {
	Dir      string      `json:"dir"`
	Name     string      `json:"name"` // plain file name: no separators, no ".."
	Auth     string      `json:"auth,omitempty"`
	User     string      `json:"user,omitempty"`
	Pass     string      `json:"pass,omitempty"`
	Mod      os.FileMode `json:"mod"`
	OwnUser  string      `json:"own_user,omitempty"`
	OwnGroup string      `json:"own_group,omitempty"`
	Size     uint64      `json:"size,omitempty"`
	MD5      MD5         `json:"md5"`
	MD5Check bool        `json:"md5_check"`
	Data     string      `json:"data,omitempty"` // compress $N$ form
	Token    string      `json:"token,omitempty"`
	URI      string      `json:"uri,omitempty"`
}

// TokenHeader carries the one-shot token of a transfer URL.
const TokenHeader = "X-Token"

// UploadRep answers Upload (type 23).
type UploadRep struct {
	Dir  string  `json:"dir"` // full path written
	OK   bool    `json:"ok"`
	Msg  string  `json:"msg,omitempty"`
	Kind ErrKind `json:"kind,omitempty"` // classifies Msg (CapErrKind only)
}

// DownloadReq asks the agent for a file (type 24).
type DownloadReq struct {
	Dir string `json:"dir"` // file path

	// CapBulk: when URI is set the agent sends the bytes with
	// PUT <scheme>://<server><URI>, header "X-Token: <Token>", instead of
	// download_data blocks, then answers DownloadRep. Offset and Length
	// select a range (Length 0: to the end of the file).
	URI    string `json:"uri,omitempty"`
	Token  string `json:"token,omitempty"`
	Offset uint64 `json:"offset,omitempty"`
	Length uint64 `json:"length,omitempty"`
}

// DownloadRep starts (v1) or concludes (CapBulk) a download (type 25).
type DownloadRep struct {
	Dir       string `json:"dir"`
	OK        bool   `json:"ok"`
	Msg       string `json:"msg,omitempty"`
	Size      uint64 `json:"size"`       // bytes that are / were sent
	BlockSize uint64 `json:"block_size"` // v1 block size; 0 with CapBulk
	MD5       MD5    `json:"md5"`        // of the bytes sent

	// Total is the whole file's size when a range was sent (CapBulk).
	Total uint64 `json:"total,omitempty"`
	// Kind classifies Msg when OK is false (CapErrKind only).
	Kind ErrKind `json:"kind,omitempty"`
}

// DefaultBlockSize is the v1 download block size.
const DefaultBlockSize = 32 << 10

// DownloadData is one block of a v1 download (type 26).
type DownloadData struct {
	Offset uint64 `json:"offset"`
	Data   string `json:"data"` // compress $N$ form
}

// DownloadError aborts a v1 download after DownloadRep (type 27).
type DownloadError struct {
	Msg  string  `json:"msg"`
	Kind ErrKind `json:"kind,omitempty"` // classifies Msg (CapErrKind only)
}
