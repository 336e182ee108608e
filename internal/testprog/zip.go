package testprog

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"slices"
	"testing"
)

// ZipBase64 returns a zip archive holding files (name → content), base64-encoded the way an
// action document carries binary code. Entries are written in name order, so the same files
// give the same archive.
func ZipBase64(t testing.TB, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatalf("testprog: zip entry %s: %v", name, err)
		}
		if _, err := w.Write([]byte(files[name])); err != nil {
			t.Fatalf("testprog: zip entry %s: %v", name, err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("testprog: zip: %v", err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}
