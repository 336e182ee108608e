package unikernel

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/snapinvoker/snapinvoker/backend"
)

func initBody(code string, binary bool, env map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"value": map[string]any{"name": "a", "main": "main", "binary": binary, "code": code, "env": env}})
	return b
}

func TestDecodeInit(t *testing.T) {
	elf := append([]byte("\x7fELF"), make([]byte, 60)...)
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "./exec", Mode: 0o755, Size: int64(len(elf)), Typeflag: tar.TypeReg})
	tw.Write(elf)
	tw.Close()
	gz.Close()
	for _, c := range []struct {
		name        string
		body        []byte
		status      int // 0: success
		unsupported bool
	}{
		{"elf", initBody(base64.StdEncoding.EncodeToString(elf), true, nil), 0, false},
		{"tar.gz", initBody(base64.StdEncoding.EncodeToString(tgz.Bytes()), true, nil), 0, false},
		{"not json", []byte(`[`), 400, false},
		{"value not an object", []byte(`{"value":3}`), 400, false},
		{"empty code", initBody("", false, nil), 403, false},
		{"bad base64", initBody("@@", true, nil), 502, false},
		{"zip without exec", initBody(base64.StdEncoding.EncodeToString([]byte("PK\x03\x04garbage")), true, nil), 502, false},
		{"text", initBody("def main(args): return args", false, nil), 502, false},
		{"script", initBody("#!/bin/sh\necho {}", false, nil), 0, true},
		{"bad env name", initBody(base64.StdEncoding.EncodeToString(elf), true, map[string]any{"A=B": "x"}), 502, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := decodeInit(c.body)
			var ref *refusal
			switch {
			case c.unsupported:
				if !errors.Is(err, backend.ErrUnsupported) {
					t.Fatalf("got %v, want ErrUnsupported", err)
				}
			case c.status != 0:
				if !errors.As(err, &ref) || ref.status != c.status {
					t.Fatalf("got %v, want a %d refusal", err, c.status)
				}
			case err != nil:
				t.Fatalf("decode: %v", err)
			case !bytes.Equal(p.exe, elf):
				t.Fatalf("executable of %d bytes, want the %d-byte ELF", len(p.exe), len(elf))
			}
		})
	}
}

func TestDecodeInitEnvironment(t *testing.T) {
	elf := base64.StdEncoding.EncodeToString(append([]byte("\x7fELF"), 0))
	p, err := decodeInit(initBody(elf, true, map[string]any{"__OW_NAMESPACE": "guest", "COUNT": 3, "OBJ": map[string]int{"a": 1}, "NIL": nil}))
	if err != nil {
		t.Fatal(err)
	}
	want := "COUNT=3|NIL=|OBJ={\"a\":1}|__OW_NAMESPACE=guest|__OW_WAIT_FOR_ACK=1"
	if got := strings.Join(p.env, "|"); got != want {
		t.Errorf("env %q, want %q", got, want)
	}
}

// FuzzDecodeInit: hostile /init bodies never panic; every failure is a refusal or unsupported.
func FuzzDecodeInit(f *testing.F) {
	f.Add(initBody("f0VMRgA=", true, nil))
	f.Add(initBody("UEsDBA==", true, map[string]any{"k": 1}))
	f.Add([]byte(`{"value":{"code":null}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodeInit(body)
		var ref *refusal
		if err != nil && !errors.As(err, &ref) && !errors.Is(err, backend.ErrUnsupported) {
			t.Fatalf("error %v is neither a refusal nor unsupported", err)
		}
		if err == nil && !bytes.HasPrefix(p.exe, elfMagic) {
			t.Fatalf("accepted a program without an ELF header")
		}
	})
}

func TestOptions(t *testing.T) {
	s, err := parseOptions(map[string]string{"ready-memory": "64m", "ready-per-function": "2", "ready-ttl": "30s", "vm-pool": "0", "snapshot-disk": "1g"})
	if err != nil {
		t.Fatal(err)
	}
	if s.ready.Budget != 64<<20 || s.ready.PerFunction != 2 || s.ready.TTL.Seconds() != 30 || s.vmPool != 0 || s.snapshotDisk != 1<<30 {
		t.Errorf("parsed %+v", s)
	}
	for _, bad := range []map[string]string{{"colour": "red"}, {"ready-memory": "lots"}, {"vm-pool": "-1"}, {"ready-ttl": "0s"}} {
		if _, err := parseOptions(bad); err == nil {
			t.Errorf("options %v accepted", bad)
		}
	}
}
