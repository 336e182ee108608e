package snapshotcache_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap/zaptest"

	sc "github.com/snapinvoker/snapinvoker/snapshotcache"
	"github.com/snapinvoker/snapinvoker/snapshotcache/cachetest"
)

func openStore(t testing.TB, dir string, b cachetest.Budgets) sc.Cache {
	t.Helper()
	s, err := sc.Open(context.Background(), sc.Config{Dir: dir, MemoryBudget: b.Memory, DiskBudget: b.Disk,
		Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatalf("Open %s: %v", dir, err)
	}
	return s
}

// flipByte flips one byte in the middle of key's record: inside the page data.
func flipByte(t testing.TB, dir string, key sc.Key) {
	t.Helper()
	path := filepath.Join(dir, "snap", key.ID()+".snap")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("corrupt %s: %v", key, err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestStoreConformance(t *testing.T) {
	cachetest.Run(t, cachetest.Harness{Open: openStore, Corrupt: flipByte})
}

// The suite again with no pages kept in memory: every diff and image is built from record files
// (copy_file_range, re-verification of changed files).
func TestStoreConformanceFromDisk(t *testing.T) {
	cachetest.Run(t, cachetest.Harness{
		Open: func(t testing.TB, dir string, b cachetest.Budgets) sc.Cache {
			return openStore(t, dir, cachetest.Budgets{Memory: 1, Disk: b.Disk})
		},
		Corrupt: flipByte,
	})
}

func TestOpenRejectsBadConfig(t *testing.T) {
	for _, cfg := range []sc.Config{{}, {Dir: t.TempDir(), DiskBudget: -1}, {Dir: t.TempDir(), MaxStateSize: 1 << 40}} {
		if _, err := sc.Open(context.Background(), cfg); !errors.Is(err, sc.ErrInvalid) {
			t.Errorf("Open(%+v): %v, want ErrInvalid", cfg, err)
		}
	}
}
