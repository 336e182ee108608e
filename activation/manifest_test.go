package activation

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestManifestResolution(t *testing.T) {
	m := testManifest(t)
	for kind, want := range map[string]string{
		"nodejs:default": "nodejs:20", "python:default": "python:3.11", "java:default": "java:8",
		"nodejs:18": "nodejs:18", "NODEJS:20": "nodejs:20", " python:3.10 ": "python:3.10",
	} {
		k, ok := m.Resolve(kind)
		if !ok || k.Kind != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", kind, k.Kind, ok, want)
		}
	}
	for _, kind := range []string{"cobol:85", "swift:default", "blackbox", "sequence", ":default", "nodejs"} {
		if k, ok := m.Resolve(kind); ok {
			t.Errorf("Resolve(%q) = %q", kind, k.Kind)
		}
	}
	if got := strings.Join(m.Kinds(), ","); got != "java:8,nodejs:18,nodejs:20,python:3.10,python:3.11" {
		t.Errorf("Kinds = %s", got)
	}
	if d, _ := m.DefaultKind("python"); d != "python:3.11" {
		t.Errorf("default python = %s", d)
	}
	cells := m.StemCells()
	if len(cells) != 2 || cells[0].Kind != "nodejs:20" || cells[0].Count != 2 || cells[0].Memory.MB() != 256 ||
		cells[0].Reactive == nil || cells[0].Reactive.TTL != 2*time.Minute || cells[0].Reactive.MaxCount != 4 ||
		cells[1].Kind != "python:3.11" || cells[1].Count != 1 || cells[1].Reactive != nil {
		t.Errorf("stem cells %+v", cells)
	}
	java, _ := m.Resolve("java:8")
	node, _ := m.Resolve("nodejs:20")
	if !java.RequiresMain() || node.RequiresMain() || !node.Sentinelled() || node.Attached == nil || !node.IsDefault() || node.IsDeprecated() {
		t.Errorf("flags: java %+v node %+v", java, node)
	}
	if node.Image.String() != "openwhisk/action-nodejs-v20:nightly" {
		t.Errorf("image %s", node.Image)
	}
	if !m.IsNativeBlackbox("openwhisk/dockerskeleton:nightly") || m.IsNativeBlackbox("myorg/ocr-action:1.2") {
		t.Error("native blackbox detection")
	}
}

func TestManifestRules(t *testing.T) {
	cases := []struct {
		name, json, field string
	}{
		{"single kind needs no default", `{"runtimes":{"go":[{"kind":"go:1.20","image":{"name":"go"}}]}}`, "-"},
		{"empty manifest", `{}`, "-"},
		{"duplicate kind across families", `{"runtimes":{"a":[{"kind":"x:1","image":{"name":"i"}}],"b":[{"kind":"x:1","image":{"name":"i"}}]}}`, "runtimes.b[0].kind"},
		{"missing kind", `{"runtimes":{"a":[{"image":{"name":"i"}}]}}`, "runtimes.a[0].kind"},
		{"missing image", `{"runtimes":{"a":[{"kind":"a:1"}]}}`, "runtimes.a[0].image"},
		{"image without name", `{"runtimes":{"a":[{"kind":"a:1","image":{"prefix":"p"}}]}}`, "runtimes.a[0].image.name"},
		{"blackbox is not a kind", `{"runtimes":{"a":[{"kind":"blackbox","image":{"name":"i"}}]}}`, "runtimes.a[0].kind"},
		{"family not an array", `{"runtimes":{"a":{"kind":"a:1"}}}`, "runtimes.a"},
		{"default not boolean", `{"runtimes":{"a":[{"kind":"a:1","image":{"name":"i"},"default":"yes"}]}}`, "runtimes.a[0].default"},
		{"stem cell bad memory", `{"runtimes":{"a":[{"kind":"a:1","image":{"name":"i"},"stemCells":[{"count":1,"memory":"lots"}]}]}}`, "runtimes.a[0].stemCells[0].memory"},
		{"stem cell nothing", `{"runtimes":{"a":[{"kind":"a:1","image":{"name":"i"},"stemCells":[{}]}]}}`, "runtimes.a[0].stemCells[0]"},
		{"stem cell negative count alias", `{"runtimes":{"a":[{"kind":"a:1","image":{"name":"i"},"stemCells":[{"count":-1,"memory":"1 MB"}]}]}}`, "runtimes.a[0].stemCells[0].count"},
		{"reactive bad ttl", `{"runtimes":{"a":[{"kind":"a:1","image":{"name":"i"},"stemCells":[{"count":1,"memory":"1 MB","reactive":{"minCount":0,"maxCount":1,"ttl":"soon","threshold":1,"increment":1}}]}]}}`, "runtimes.a[0].stemCells[0].reactive.ttl"},
		{"reactive increment above max", `{"runtimes":{"a":[{"kind":"a:1","image":{"name":"i"},"stemCells":[{"count":1,"memory":"1 MB","reactive":{"minCount":0,"maxCount":1,"ttl":"1 s","threshold":1,"increment":2}}]}]}}`, "runtimes.a[0].stemCells[0].reactive.increment"},
		{"reactive zero threshold", `{"runtimes":{"a":[{"kind":"a:1","image":{"name":"i"},"stemCells":[{"count":1,"memory":"1 MB","reactive":{"minCount":0,"maxCount":1,"ttl":"1 s","threshold":0,"increment":1}}]}]}}`, "runtimes.a[0].stemCells[0].reactive.threshold"},
		{"blackboxes not array", `{"blackboxes":{"name":"x"}}`, "blackboxes"},
		{"blackbox without name", `{"blackboxes":[{"prefix":"x"}]}`, "blackboxes[0].name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := DecodeManifest([]byte(c.json))
			if c.field == "-" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := Marshal(m); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantFieldError(t, err, c.field, ErrInvalidManifest)
		})
	}
}

func TestParseScalaDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"2 minutes": 2 * time.Minute, "1 minute": time.Minute, "30s": 30 * time.Second, "500 ms": 500 * time.Millisecond,
		"1 hour": time.Hour, "10 days": 240 * time.Hour, "3 seconds": 3 * time.Second, "7 milliseconds": 7 * time.Millisecond,
	} {
		if got, err := ParseScalaDuration(s); err != nil || got != want {
			t.Errorf("%q = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "minutes", "2", "2 fortnights", "-1 s", "1.5 s", "99999999999999 days"} {
		if d, err := ParseScalaDuration(s); err == nil {
			t.Errorf("%q accepted as %v", s, d)
		}
	}
}

func TestActionDocumentRules(t *testing.T) {
	m := testManifest(t)
	// provide-api-key: absent or truthy provides the key; false, 0, "" and null withhold it.
	for value, provide := range map[string]bool{"": true, "true": true, "1": true, `"x"`: true, "{}": true,
		"false": false, "0": false, `""`: false, "null": false, "0.0": false} {
		d := &ActionDocument{}
		if value != "" {
			d.Annotations = Parameters{{Key: AnnotationProvideAPIKey, Value: []byte(value)}}
		}
		if d.ProvideAPIKey() != provide {
			t.Errorf("provide-api-key %q: ProvideAPIKey = %v", value, d.ProvideAPIKey())
		}
	}

	doc := string(readFixture(t, "action-doc-nodejs-inline.json"))
	// family:default resolves to the manifest's default kind.
	d, err := DecodeAction([]byte(strings.Replace(doc, `"kind": "nodejs:20"`, `"kind": "NodeJS:Default"`, 1)), m)
	if err != nil || d.Exec.Kind != "nodejs:20" {
		t.Fatalf("default kind: %v %v", d, err)
	}
	// Plain-string code: binary is computed from the text.
	plain := mutate(t, "action-doc-nodejs-inline.json", func(m map[string]any) {
		e := m["exec"].(map[string]any)
		e["code"], e["binary"] = "UEsDBBQAAAAIAA==", false // the stored flag is ignored for strings
	})
	d, err = DecodeAction(plain, m)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Exec.Binary || d.Exec.Code.Form() != CodePlain {
		t.Errorf("base64 plain code: binary=%v form=%v", d.Exec.Binary, d.Exec.Code.Form())
	}
	// Code forms.
	inline := loadAction(t, "action-doc-nodejs-inline.json").Exec.Code
	couch := loadAction(t, "action-doc-java-attachment.json").Exec.Code
	if inline.Form() != CodeInline || couch.Form() != CodeCouch || couch.AttachmentName() != "8d0a8f3e-1b7c-4c3e-9a51-5e6f2b7d9c10" {
		t.Errorf("forms %v %v %q", inline.Form(), couch.Form(), couch.AttachmentName())
	}
	code, err := inline.InlineBytes()
	if err != nil || !strings.HasPrefix(string(code), "function main(p)") || int64(len(code)) != *inline.Attachment.Length {
		t.Errorf("inline code %q %v", code, err)
	}
	legacy := &Code{Attachment: &Attachment{Name: "jarfile", Type: "application/java-archive"}}
	if legacy.Form() != CodeLegacyAttachment || legacy.AttachmentName() != "jarfile" {
		t.Error("legacy attachment")
	}
	// Legacy "jar" member is read and written back under its own name.
	java := string(readFixture(t, "action-doc-java-attachment.json"))
	d, err = DecodeAction([]byte(strings.Replace(java, `"code": {`, `"jar": {`, 1)), m)
	if err != nil || d.Exec.Code == nil {
		t.Fatalf("jar: %v", err)
	}
	if out, _ := Marshal(d); !strings.Contains(string(out), `"jar":{`) {
		t.Errorf("jar written as %s", out)
	}
	// Mismatched entity type, attachment for a kind without "attached", bad sequence component.
	_, err = DecodeAction([]byte(strings.Replace(doc, `"entityType": "action"`, `"entityType": "package"`, 1)), m)
	wantFieldError(t, err, "entityType", ErrInvalidAction)
	noAttach, _ := DecodeManifest([]byte(`{"runtimes":{"nodejs":[{"kind":"nodejs:20","image":{"name":"n"}}]}}`))
	_, err = DecodeAction([]byte(doc), noAttach)
	wantFieldError(t, err, "exec.code", ErrInvalidAction)
	seq := string(readFixture(t, "action-doc-sequence.json"))
	_, err = DecodeAction([]byte(strings.Replace(seq, `"/guest/split-array"`, `"/guest"`, 1)), m)
	wantFieldError(t, err, "exec.components[0]", ErrInvalidAction)
	// Without a manifest unknown kinds pass; with one they do not.
	unknown := strings.Replace(doc, `"kind": "nodejs:20"`, `"kind": "cobol:85"`, 1)
	if _, err := DecodeAction([]byte(unknown), nil); err != nil {
		t.Errorf("structural decode: %v", err)
	}
	if _, err := DecodeAction([]byte(unknown), m); !errors.Is(err, ErrInvalidAction) {
		t.Errorf("unknown kind accepted: %v", err)
	}
	// The limits annotation fills the optional limits with the system's standard values.
	py := loadAction(t, "action-doc-python-plain-string.json")
	if got := string(py.Limits.Annotation(DefaultSystemLimits())); got != `{"timeout":60000,"memory":256,"logs":10,"concurrency":1}` {
		t.Errorf("limits annotation %s", got)
	}
}

func TestManifestKindsAreMatchedLowerCased(t *testing.T) {
	m, err := DecodeManifest([]byte(`{"runtimes":{"NodeJS":[{"kind":"NodeJS:D8","image":{"name":"n"},"default":true},{"kind":"nodejs:x","image":{"name":"n"}}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range append(m.Kinds(), "nodejs:default", "NODEJS:D8") {
		if r, ok := m.Resolve(k); !ok || r.Kind == "" {
			t.Errorf("Resolve(%q) failed", k)
		}
	}
	if _, err := DecodeManifest([]byte(`{"runtimes":{"a":[{"kind":"A:1","image":{"name":"n"}}],"b":[{"kind":"a:1","image":{"name":"n"}}]}}`)); !errors.Is(err, ErrInvalidManifest) {
		t.Errorf("kinds differing only in case accepted: %v", err)
	}
}
