package controller

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// An HTTP script drives the API the way a client does and states what must come back.
//
//	# comment
//	> METHOD PATH [as=guest|system|none|bad|other|raw:<header value>] [size=N]
//	request body (optional, may span lines)
//	< STATUS [save=var:field.path ...]
//	! Header-Name: expected value (optional, repeatable)
//	expected JSON (optional): a subset of the response
//
// Matching: objects match when every expected member matches (extra members are allowed);
// arrays must have the same length and match element by element; a string "~re" matches a
// string by regular expression; "!absent" requires the member to be missing; "*" matches any
// value. $var in a path or body is replaced by a saved value. size=N sends a body of N bytes of
// JSON ({"a":"xxx…"}) instead of the body text.
type step struct {
	line       int
	method     string
	path       string
	as         string
	size       int
	body       string
	status     int
	saves      map[string]string
	headers    map[string]string
	expect     string
	rawExpect  bool
	expectText string
}

func parseScript(t *testing.T, path string) []step {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		steps []step
		cur   *step
		mode  string // "body" or "expect"
		buf   []string
	)
	flush := func() {
		if cur == nil {
			return
		}
		text := strings.TrimSpace(strings.Join(buf, "\n"))
		if mode == "body" {
			cur.body = text
		} else {
			cur.expect = text
		}
		buf = nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "> "):
			flush()
			if cur != nil {
				steps = append(steps, *cur)
			}
			f := strings.Fields(line[2:])
			cur = &step{line: n, method: f[0], path: f[1], as: "guest", saves: map[string]string{}, headers: map[string]string{}}
			for _, opt := range f[2:] {
				k, v, _ := strings.Cut(opt, "=")
				switch k {
				case "as":
					cur.as = v
				case "size":
					fmt.Sscan(v, &cur.size)
				default:
					t.Fatalf("%s:%d: unknown option %q", path, n, opt)
				}
			}
			mode = "body"
		case strings.HasPrefix(line, "< "):
			flush()
			f := strings.Fields(line[2:])
			if _, err := fmt.Sscan(f[0], &cur.status); err != nil {
				t.Fatalf("%s:%d: bad status %q", path, n, f[0])
			}
			for _, opt := range f[1:] {
				k, v, _ := strings.Cut(opt, "=")
				switch k {
				case "save":
					name, field, _ := strings.Cut(v, ":")
					cur.saves[name] = field
				case "text":
					cur.rawExpect = true
				default:
					t.Fatalf("%s:%d: unknown option %q", path, n, opt)
				}
			}
			mode = "expect"
		case strings.HasPrefix(line, "! ") && mode == "expect":
			k, v, _ := strings.Cut(line[2:], ":")
			cur.headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
		default:
			buf = append(buf, line)
		}
	}
	flush()
	if cur != nil {
		steps = append(steps, *cur)
	}
	return steps
}

// authHeader gives the Authorization value for a step's "as".
func authHeader(as string) string {
	basic := func(k string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(k)) }
	switch {
	case as == "guest":
		return basic(GuestKey)
	case as == "system":
		return basic(WhiskSystemKey)
	case as == "other":
		return basic(otherKey)
	case as == "bad":
		return basic("23bc46b1-71f6-4ed5-8c54-816aa4f8c502:wrongwrongwrongwrongwrongwrongwrongwrongwrongwrongwrongwrongwron")
	case as == "none":
		return ""
	case strings.HasPrefix(as, "raw:"):
		return strings.ReplaceAll(strings.TrimPrefix(as, "raw:"), "_", " ")
	}
	panic("unknown identity " + as)
}

const otherKey = "11111111-2222-4333-8444-555555555555:0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF"

func runScript(t *testing.T, base string, path string) {
	steps := parseScript(t, path)
	vars := map[string]string{}
	subst := func(s string) string {
		keys := make([]string, 0, len(vars))
		for k := range vars {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
		for _, k := range keys {
			s = strings.ReplaceAll(s, "$"+k, vars[k])
		}
		return s
	}
	for _, st := range steps {
		where := fmt.Sprintf("%s:%d %s %s", filepath.Base(path), st.line, st.method, st.path)
		var body io.Reader
		if st.size > 0 {
			pad := st.size - len(`{"a":""}`)
			body = strings.NewReader(`{"a":"` + strings.Repeat("x", pad) + `"}`)
		} else if st.body != "" {
			body = strings.NewReader(subst(st.body))
		}
		req, err := http.NewRequest(st.method, base+subst(st.path), body)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if h := authHeader(st.as); h != "" {
			req.Header.Set("Authorization", h)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != st.status {
			t.Errorf("%s: status %d, want %d; body %s", where, resp.StatusCode, st.status, got)
			continue
		}
		if rid := resp.Header.Get("X-Request-ID"); len(rid) != 32 {
			t.Errorf("%s: X-Request-ID %q, want 32 characters", where, rid)
		}
		var gotV any
		if !st.rawExpect && len(bytes.TrimSpace(got)) > 0 {
			if err := json.Unmarshal(got, &gotV); err != nil {
				t.Errorf("%s: response is not JSON: %v: %s", where, err, got)
				continue
			}
		}
		for name, field := range st.saves {
			v := lookup(gotV, field)
			if v == nil {
				t.Fatalf("%s: save %s: no %s in %s", where, name, field, got)
			}
			vars[name] = fmt.Sprint(v)
		}
		for k, v := range st.headers {
			if h := resp.Header.Get(k); !matchString(subst(v), h) {
				t.Errorf("%s: header %s = %q, want %q", where, k, h, subst(v))
			}
		}
		if st.rawExpect {
			if strings.TrimSpace(string(got)) != subst(st.expect) {
				t.Errorf("%s: body %q, want %q", where, got, subst(st.expect))
			}
			continue
		}
		if st.expect != "" {
			var want any
			if err := json.Unmarshal([]byte(subst(st.expect)), &want); err != nil {
				t.Fatalf("%s: expected JSON in script does not parse: %v", where, err)
			}
			if err := match(want, gotV, "$"); err != nil {
				t.Errorf("%s: %v\n  got %s", where, err, got)
			}
		}
		m, _ := gotV.(map[string]any)
		if _, hasCode := m["code"]; st.status >= 400 && st.status != 502 && (st.status != 500 || hasCode) {
			// Every error the controller makes is the envelope with the transaction id;
			// activations answered with 502/500 carry no code.
			if code, _ := m["code"].(string); code != resp.Header.Get("X-Request-ID") {
				t.Errorf("%s: error code %v is not the transaction id %q", where, m["code"], resp.Header.Get("X-Request-ID"))
			}
		}
	}
}

func lookup(v any, path string) any {
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	if f, ok := v.(float64); ok {
		return fmt.Sprintf("%.0f", f)
	}
	return v
}

func matchString(want, got string) bool {
	if strings.HasPrefix(want, "~") {
		return regexp.MustCompile(want[1:]).MatchString(got)
	}
	return want == got
}

func match(want, got any, path string) error {
	if s, ok := want.(string); ok {
		if s == "*" {
			return nil
		}
		if strings.HasPrefix(s, "~") {
			gs, ok := got.(string)
			if !ok || !matchString(s, gs) {
				return fmt.Errorf("%s: %v does not match %s", path, got, s)
			}
			return nil
		}
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %v", path, got)
		}
		for k, wv := range w {
			gv, present := g[k]
			if wv == "!absent" {
				if present {
					return fmt.Errorf("%s.%s: must be absent, got %v", path, k, gv)
				}
				continue
			}
			if !present {
				return fmt.Errorf("%s.%s: missing", path, k)
			}
			if err := match(wv, gv, path+"."+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: want an array of %d, got %v", path, len(w), got)
		}
		for i := range w {
			if err := match(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	wb, _ := json.Marshal(want)
	gb, _ := json.Marshal(got)
	if !bytes.Equal(wb, gb) {
		return fmt.Errorf("%s: got %s, want %s", path, gb, wb)
	}
	return nil
}
