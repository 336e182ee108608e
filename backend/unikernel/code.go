package unikernel

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"

	"github.com/snapinvoker/snapinvoker/backend"
)

// initValue is the "value" of an /init body (protocol spec §6).
type initValue struct {
	Name   string                     `json:"name"`
	Main   string                     `json:"main"`
	Code   *string                    `json:"code"`
	Binary bool                       `json:"binary"`
	Env    map[string]json.RawMessage `json:"env"`
}

// program is a native action decoded from its /init body.
type program struct {
	exe []byte
	// env is the executable's whole environment, KEY=VALUE sorted by key: built from scratch as
	// the actionloop proxy does (the init env map, non-strings as JSON text) plus
	// __OW_WAIT_FOR_ACK, which asks launchers that honour it for the start ack.
	env []string
	// digest identifies code, main and binary flag, for actions that come without a CodeDigest.
	digest string
}

// refusal is an /init the action's runtime would refuse: the driver answers it as the runtime
// would (status and message) rather than failing.
type refusal struct {
	status int
	msg    string
}

func (r *refusal) Error() string { return fmt.Sprintf("%d %s", r.status, r.msg) }

// maxExecutable bounds the decompressed executable; it must fit in guest memory anyway.
const maxExecutable = 512 << 20

// decodeInit parses an /init body into the program to boot. Errors are a *refusal (the answer
// to give) or wrap backend.ErrUnsupported (code this driver cannot run: a script, a dynamically
// linked executable).
func decodeInit(body []byte) (*program, error) {
	var doc struct {
		Value *initValue `json:"value"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Value == nil {
		msg := "init body: field value: missing or not a JSON object"
		if err != nil {
			msg = fmt.Sprintf("init body: not a JSON object: %v", err)
		}
		return nil, &refusal{400, msg}
	}
	v := doc.Value
	if v.Code == nil || *v.Code == "" {
		return nil, &refusal{403, "Missing main/no code to execute."}
	}
	sum := sha256.New()
	fmt.Fprintf(sum, "%d:%s|%d:%s|%t", len(v.Main), v.Main, len(*v.Code), *v.Code, v.Binary)
	p := &program{digest: "sha256:" + hex.EncodeToString(sum.Sum(nil))}
	code := []byte(*v.Code)
	if v.Binary {
		var err error
		if code, err = base64.StdEncoding.DecodeString(*v.Code); err != nil {
			return nil, &refusal{502, fmt.Sprintf("init body: field value.code: invalid base64: %v", err)}
		}
	}
	exe, err := extractExec(code)
	if err != nil {
		return nil, err
	}
	p.exe = exe
	env := map[string]string{"__OW_WAIT_FOR_ACK": "1"}
	for k, raw := range v.Env {
		if k == "" || bytes.ContainsAny([]byte(k), "=\x00") {
			return nil, &refusal{502, fmt.Sprintf("init body: field value.env: invalid variable name %q", k)}
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			s = string(raw) // non-strings as JSON text, as the proxy does
			if s == "null" {
				s = ""
			}
		}
		if bytes.IndexByte([]byte(s), 0) >= 0 {
			return nil, &refusal{502, fmt.Sprintf("init body: field value.env.%s: contains a NUL byte", k)}
		}
		env[k] = s
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.env = append(p.env, k+"="+env[k])
	}
	return p, nil
}

var (
	elfMagic  = []byte("\x7fELF")
	zipMagic  = []byte("PK\x03\x04")
	gzipMagic = []byte("\x1f\x8b")
)

// extractExec finds the executable in the action's code: the code itself, or the file `exec` at
// the top of a zip or tar.gz (what `wsk action create --native exec.zip` uploads).
func extractExec(code []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(code, zipMagic):
		zr, err := zip.NewReader(bytes.NewReader(code), int64(len(code)))
		if err != nil {
			return nil, &refusal{502, fmt.Sprintf("init body: field value.code: unreadable zip: %v", err)}
		}
		for _, f := range zr.File {
			if path.Clean(f.Name) != "exec" {
				continue
			}
			rc, err := f.Open()
			if err != nil {
				return nil, &refusal{502, fmt.Sprintf("zip entry exec: %v", err)}
			}
			defer rc.Close()
			return checkExec(readBounded(rc))
		}
		return nil, &refusal{502, "zip file does not contain an executable named exec"}
	case bytes.HasPrefix(code, gzipMagic):
		gz, err := gzip.NewReader(bytes.NewReader(code))
		if err != nil {
			return nil, &refusal{502, fmt.Sprintf("init body: field value.code: unreadable gzip: %v", err)}
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return nil, &refusal{502, "archive does not contain an executable named exec"}
				}
				return nil, &refusal{502, fmt.Sprintf("init body: field value.code: unreadable tar.gz: %v", err)}
			}
			if h.Typeflag == tar.TypeReg && path.Clean(h.Name) == "exec" {
				return checkExec(readBounded(tr))
			}
		}
	}
	return checkExec(code, nil)
}

func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxExecutable+1))
	if err == nil && len(b) > maxExecutable {
		err = fmt.Errorf("more than %d MiB", maxExecutable>>20)
	}
	return b, err
}

// checkExec accepts an ELF executable; a script (#!) or an ELF kvm cannot load is another
// driver's business, anything else the action's fault.
func checkExec(b []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, &refusal{502, fmt.Sprintf("executable exec: %v", err)}
	}
	switch {
	case bytes.HasPrefix(b, elfMagic):
		return b, nil
	case bytes.HasPrefix(b, []byte("#!")):
		line, _, _ := bytes.Cut(b, []byte("\n"))
		return nil, fmt.Errorf("unikernel: the action is a script (%.60q) and needs an interpreter: %w", line, backend.ErrUnsupported)
	}
	return nil, &refusal{502, "cannot start action: exec is not an executable (" + strconv.Itoa(len(b)) + " bytes, no ELF header)"}
}
