package controller

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/snapinvoker/snapinvoker/store"
)

func fuzzServer(f *testing.F) *Server {
	st, err := store.Open(f.TempDir(), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	s, err := New(Config{Store: st, Users: DefaultUsers()})
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// FuzzRequests sends hostile requests through the whole handler (no invoker: invokes are
// 503): whatever comes in, the answer is JSON, never a 500, and every error is the envelope.
func FuzzRequests(f *testing.F) {
	s := fuzzServer(f)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(GuestKey))
	for _, seed := range []struct{ method, path, body string }{
		{"PUT", "/api/v1/namespaces/_/actions/a?overwrite=true", `{"exec":{"kind":"nodejs:default","code":"x"},"limits":{"memory":256}}`},
		{"PUT", "/api/v1/namespaces/_/actions/s", `{"exec":{"kind":"sequence","components":["/_/a","/_/s"]}}`},
		{"PUT", "/api/v1/namespaces/_/actions/b", `{"exec":{"kind":"java:8","code":"UEs="},"parameters":[{"key":1}]}`},
		{"GET", "/api/v1/namespaces/_/actions?limit=-1&skip=x", ``},
		{"GET", "/api/v1/namespaces/_/activations?name=a/b&since=1&upto=2&docs=true", ``},
		{"POST", "/api/v1/namespaces/_/actions/a?blocking=true&timeout=0", `[]`},
		{"GET", "/api/v1/namespaces/_/activations/0123456789abcdef0123456789abcdef/logs", ``},
		{"DELETE", "/api/v1/namespaces/_/actions/a/b/c", ``},
	} {
		f.Add(seed.method, seed.path, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		switch method {
		case "GET", "PUT", "POST", "DELETE":
		default:
			return
		}
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#") {
			return
		}
		req, err := http.NewRequest(method, "http://x"+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s %q: 500: %s", method, path, body, rec.Body)
		}
		if path == "/ping" {
			return
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s %q: %d answer is not JSON: %q", method, path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var env struct{ Error, Code string }
			if json.Unmarshal(rec.Body.Bytes(), &env) != nil || env.Error == "" || env.Code != rec.Header().Get("X-Request-ID") {
				t.Fatalf("%s %s %q: %d without the envelope: %s", method, path, body, rec.Code, rec.Body)
			}
		}
	})
}
