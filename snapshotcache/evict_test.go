package snapshotcache

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEvictionScripts drives the pure eviction policy with testdata/evict-*.txt. Lines:
//
//	budget N | used N | tree | flat     set the plan's inputs (tree: whole snapshots, parents kept)
//	snap ID bytes=N use=N [parent=ID] [refs=N] [pinned] [busy]
//	plan -> ID ... | plan -> none       run planEviction and compare, in order
//	reset                               forget the snapshots
func TestEvictionScripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/evict-*.txt")
	if len(files) == 0 {
		t.Fatal("no testdata/evict-*.txt scripts")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var cands []candidate
			var budget, used int64
			tree := false
			sc := bufio.NewScanner(f)
			for n := 1; sc.Scan(); n++ {
				line := strings.TrimSpace(sc.Text())
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				fields := strings.Fields(line)
				num := func(s string) int64 {
					v, err := strconv.ParseInt(s, 10, 64)
					if err != nil {
						t.Fatalf("%s:%d: %q: %v", file, n, s, err)
					}
					return v
				}
				switch fields[0] {
				case "budget":
					budget = num(fields[1])
				case "used":
					used = num(fields[1])
				case "tree", "flat":
					tree = fields[0] == "tree"
				case "reset":
					cands = nil
				case "snap":
					c := candidate{id: fields[1]}
					for _, kv := range fields[2:] {
						k, v, _ := strings.Cut(kv, "=")
						switch k {
						case "bytes":
							c.bytes = num(v)
						case "use":
							c.lastUse = uint64(num(v))
						case "parent":
							c.parent = v
						case "refs":
							c.refs = int(num(v))
						case "pinned":
							c.pinned = true
						case "busy":
							c.busy = true
						default:
							t.Fatalf("%s:%d: unknown attribute %q", file, n, kv)
						}
					}
					cands = append(cands, c)
				case "plan":
					_, want, ok := strings.Cut(line, "->")
					if !ok {
						t.Fatalf("%s:%d: plan without ->", file, n)
					}
					got := strings.Join(planEviction(cands, used, budget, tree), " ")
					if got == "" {
						got = "none"
					}
					if got != strings.TrimSpace(want) {
						t.Errorf("%s:%d: plan -> %s, want %s", file, n, got, strings.TrimSpace(want))
					}
				default:
					t.Fatalf("%s:%d: unknown command %q", file, n, fields[0])
				}
			}
		})
	}
}
