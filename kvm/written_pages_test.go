package kvm

import (
	"bytes"
	"testing"
)

// TestWrittenPages: after an activation, every page of a restored guest that WrittenPages does not
// list still holds the snapshot's bytes, and the pages the activation wrote are listed.
func TestWrittenPages(t *testing.T) {
	h := openHost(t)
	snap := echoSnapshot(t, h)
	var c captured
	g := restored(t, h, snap, c.config(Config{}))
	if got := activate(t, g, &c, `{"value":{"name":"written"}}`); got == "" {
		t.Fatal("echo did not answer")
	}
	pages, err := g.WrittenPages()
	if err != nil {
		t.Fatal(err)
	}
	listed := map[uint64]bool{}
	for i, p := range pages {
		if i > 0 && pages[i-1] >= p {
			t.Fatalf("pages not ascending at %d: %d after %d", i, p, pages[i-1])
		}
		listed[p] = true
	}
	changed := 0
	for p := uint64(0); p < uint64(len(g.mem.b))/pageSize; p++ {
		mem, img := g.mem.b[p*pageSize:(p+1)*pageSize], snap.image[p*pageSize:(p+1)*pageSize]
		if !bytes.Equal(mem, img) {
			changed++
			if !listed[p] {
				t.Fatalf("page %d differs from the snapshot but is not listed", p)
			}
		}
	}
	if changed == 0 || len(pages) == 0 {
		t.Fatalf("an activation changed %d pages and %d are listed; want some of each", changed, len(pages))
	}
	g.Close()
	if _, err := g.WrittenPages(); err == nil {
		t.Error("WrittenPages of a closed guest succeeded")
	}
}
