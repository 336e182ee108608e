package snapshotcache

import (
	"cmp"
	"slices"
)

// candidate is what the eviction policy knows about one snapshot in one tier.
type candidate struct {
	id      string
	parent  string // "" for a root; only consulted when evicting whole snapshots
	lastUse uint64 // logical clock of the last Get, Lookup or Release; smaller is older
	bytes   int64  // what evicting it frees in this tier; 0 means it holds nothing here
	refs    int    // handles held
	pinned  bool
	busy    bool // an image is being composed from it, or it is being written
}

// planEviction is the pure eviction policy: least recently used first, never a snapshot that is
// held, pinned or busy, and, when tree is true (whole snapshots leave the cache), never one that
// is the parent of a snapshot that stays. It returns the ids to evict, in order, stopping as soon
// as used falls to budget or below; if everything evictable is not enough it returns all of it.
func planEviction(cands []candidate, used, budget int64, tree bool) []string {
	if used <= budget {
		return nil
	}
	order := slices.Clone(cands)
	slices.SortStableFunc(order, func(a, b candidate) int {
		if c := cmp.Compare(a.lastUse, b.lastUse); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	children := map[string]int{}
	if tree {
		for _, c := range cands {
			if c.parent != "" {
				children[c.parent]++
			}
		}
	}
	gone := make([]bool, len(order))
	var out []string
	// Evicting a leaf may turn its parent into a leaf, which may be older than what was already
	// passed over: rescan until nothing more can go.
	for progress := true; progress && used > budget; {
		progress = false
		for i, c := range order {
			if gone[i] || c.bytes <= 0 || c.refs > 0 || c.pinned || c.busy || children[c.id] > 0 {
				continue
			}
			gone[i] = true
			out = append(out, c.id)
			used -= c.bytes
			if tree && c.parent != "" {
				children[c.parent]--
				progress = true
			}
			if used <= budget {
				return out
			}
			if progress {
				break // a parent may now be the oldest candidate
			}
		}
	}
	return out
}
