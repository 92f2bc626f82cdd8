package client

import (
	"bytes"
	"mime/multipart"
)

// multipartBody builds a small form in memory: the fields (empty ones
// left out, but for repeated args), then the file part (when name is not
// empty).
func multipartBody(fields [][2]string, name string, file []byte) (string, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		if f[1] == "" && f[0] != "args" {
			continue
		}
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return "", "", err
		}
	}
	if name != "" {
		fw, err := mw.CreateFormFile("file", name)
		if err != nil {
			return "", "", err
		}
		if _, err := fw.Write(file); err != nil {
			return "", "", err
		}
	}
	if err := mw.Close(); err != nil {
		return "", "", err
	}
	return buf.String(), mw.FormDataContentType(), nil
}
