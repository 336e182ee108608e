package store

import (
	"encoding/json"
	"sort"
	"strings"
	"sync"
)

// ActivationQuery selects activations of one namespace, the way the activations list endpoint
// does: newest first, filtered by name and by start time.
type ActivationQuery struct {
	// Name, when set, keeps activations of this action: "action" or "pkg/action" (the path
	// annotation without its namespace, falling back to the record's name).
	Name string
	// Since and Upto bound the start time in epoch milliseconds, inclusive; 0 means unbounded.
	Since, Upto int64
	// Skip drops the newest Skip matches; Limit caps the result (0 means no cap).
	Skip, Limit int
}

// actEntry is what the index keeps per activation.
type actEntry struct {
	id    string // document id: namespace/activationId
	name  string // for the name filter
	start int64
}

func (a actEntry) before(b actEntry) bool {
	if a.start != b.start {
		return a.start < b.start
	}
	return a.id < b.id
}

// activationIndex keeps, per namespace, the activations ordered by start time. It has its own
// lock because queries run under the database's read lock while other readers run too.
type activationIndex struct {
	mu    sync.RWMutex
	byNS  map[string][]actEntry // ascending by (start, id)
	byID  map[string]string     // document id → namespace
	start map[string]actEntry
}

func newActivationIndex() *activationIndex {
	return &activationIndex{byNS: map[string][]actEntry{}, byID: map[string]string{}, start: map[string]actEntry{}}
}

// activationFields is the part of an activation record the index needs.
type activationFields struct {
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	Start       int64  `json:"start"`
	Annotations []struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	} `json:"annotations"`
}

func (ix *activationIndex) put(id string, body []byte) {
	var f activationFields
	_ = json.Unmarshal(body, &f) // a record we cannot read is still indexed by its id
	ns := f.Namespace
	if ns == "" {
		ns, _, _ = strings.Cut(id, "/")
	}
	name := f.Name
	for _, a := range f.Annotations {
		if a.Key != "path" {
			continue
		}
		var p string
		if json.Unmarshal(a.Value, &p) == nil {
			if _, rest, ok := strings.Cut(p, "/"); ok && rest != "" {
				name = rest
			}
		}
	}
	e := actEntry{id: id, name: name, start: f.Start}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	list := ix.byNS[ns]
	i := sort.Search(len(list), func(i int) bool { return !list[i].before(e) })
	list = append(list, actEntry{})
	copy(list[i+1:], list[i:])
	list[i] = e
	ix.byNS[ns] = list
	ix.byID[id] = ns
	ix.start[id] = e
}

func (ix *activationIndex) remove(id string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ns, ok := ix.byID[id]
	if !ok {
		return
	}
	e := ix.start[id]
	list := ix.byNS[ns]
	i := sort.Search(len(list), func(i int) bool { return !list[i].before(e) })
	if i < len(list) && list[i].id == id {
		list = append(list[:i], list[i+1:]...)
	}
	if len(list) == 0 {
		delete(ix.byNS, ns)
	} else {
		ix.byNS[ns] = list
	}
	delete(ix.byID, id)
	delete(ix.start, id)
}

// query returns the document ids that match, newest first, and the number of matches before
// skip and limit were applied.
func (ix *activationIndex) query(ns string, q ActivationQuery) ([]string, int) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	list := ix.byNS[ns]
	var (
		ids   []string
		total int
	)
	for i := len(list) - 1; i >= 0; i-- {
		e := list[i]
		if q.Upto > 0 && e.start > q.Upto {
			continue
		}
		if q.Since > 0 && e.start < q.Since {
			break // ascending order: everything further back is older still
		}
		if q.Name != "" && e.name != q.Name {
			continue
		}
		total++
		if total <= q.Skip {
			continue
		}
		if q.Limit > 0 && len(ids) >= q.Limit {
			continue
		}
		ids = append(ids, e.id)
	}
	return ids, total
}
