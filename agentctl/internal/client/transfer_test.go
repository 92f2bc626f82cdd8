package client

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestUploadVerify checks that Upload sends the file's CRC-32C after the
// file and compares the server's report of what it received with what
// was sent: a reply that differs, or that does not say (a server that
// ignored the crc32c parameter), is an ErrChecksum naming the problem.
func TestUploadVerify(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640,000 bytes: several copy buffers
	crc := fmt.Sprintf("%08x", crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
	md := fmt.Sprintf("%x", md5.Sum(data))
	for _, tc := range []struct {
		name       string
		noChecksum bool
		reply      string // payload; %s: the CRC-32C the server computed
		err        string
		wantField  string // the crc32c field the server must have received
	}{
		{name: "good", reply: `{"dir":"/d/f","size":640000,"md5":"` + md + `","crc32c":"%s"}`, wantField: crc},
		{name: "upper-case hex", reply: `{"dir":"/d/f","size":640000,"md5":"` + md + `","crc32c":"` + strings.ToUpper(crc) + `"}`, wantField: crc},
		{name: "damaged", reply: `{"dir":"/d/f","size":640000,"md5":"` + md + `","crc32c":"0badf00d"}`, wantField: crc,
			err: "checksum mismatch: sent crc32c " + crc + ", the server received 0badf00d; /d/f is damaged"},
		{name: "short", reply: `{"dir":"/d/f","size":639999,"md5":"` + md + `","crc32c":"%s"}`, wantField: crc,
			err: "checksum mismatch: sent 640000 bytes, the server received 639999; /d/f is damaged"},
		{name: "not reported", reply: `{"dir":"/d/f"}`, wantField: crc,
			err: "checksum mismatch: the server did not report the size and CRC-32C of what it received"},
		{name: "no checksum", noChecksum: true, reply: `{"dir":"/d/f"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gotField, gotCRC string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mr, err := r.MultipartReader()
				if err != nil {
					http.Error(w, err.Error(), 400)
					return
				}
				for {
					p, err := mr.NextPart()
					if err != nil {
						break
					}
					b, _ := io.ReadAll(p)
					switch p.FormName() {
					case "file":
						gotCRC = fmt.Sprintf("%08x", crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
					case "crc32c":
						gotField = string(b)
					}
				}
				reply := tc.reply
				if strings.Contains(reply, "%s") {
					reply = fmt.Sprintf(reply, gotCRC)
				}
				fmt.Fprintf(w, `{"code":200,"payload":%s}`, reply)
			}))
			defer srv.Close()
			c, err := New(Options{Servers: []string{srv.URL}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			res, err := c.Upload(context.Background(), "a1", UploadSpec{Dir: "/d", Name: "f", NoChecksum: tc.noChecksum},
				func() (io.Reader, error) { return bytes.NewReader(data), nil }, false, nil)
			if gotField != tc.wantField {
				t.Errorf("crc32c field %q, want %q", gotField, tc.wantField)
			}
			if tc.err != "" {
				if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want ErrChecksum with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Path != "/d/f" || res.Size != int64(len(data)) {
				t.Errorf("result %+v", res)
			}
			if !tc.noChecksum && (res.CRC32C != crc || res.MD5 != md) {
				t.Errorf("result %+v, want crc32c %s md5 %s", res, crc, md)
			}
		})
	}
}
