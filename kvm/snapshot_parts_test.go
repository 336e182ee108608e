package kvm

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestCheckpointAndImageRestore covers the two-part snapshot API (snapshot_parts.go): state blob
// plus a memory image file, as a snapshot store composes it.
func TestCheckpointAndImageRestore(t *testing.T) {
	h := openHost(t)
	var c captured
	g := startEcho(t, h, &c)
	g.k.publishClock(false) // a live clock page must not travel in the image
	ck, err := g.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	img, err := os.Create(filepath.Join(t.TempDir(), "image"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if _, err := io.Copy(img, io.NewSectionReader(ck.Memory, 0, ck.Size)); err != nil {
		t.Fatal(err)
	}
	snap, err := h.OpenSnapshotImage(ck.State, img)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if string(snap.image[vvarAddr:vvarAddr+vvarSize]) != string(make([]byte, vvarSize)) {
		t.Error("the image carries the host's clock page")
	}
	var c2 captured
	g2 := restored(t, h, snap, c2.config(Config{}))
	if got := activate(t, g2, &c2, `"parts"`); got != `{"echo":"parts"}`+"\n" {
		t.Fatalf("result %q", got)
	}
}
