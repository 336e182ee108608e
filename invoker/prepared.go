package invoker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/invoker/couch"
)

// prepared is an action document decoded once per (docid, revision): a revision's content
// never changes, and decoding and hashing a document with megabytes of inline code on every
// activation would dominate a warm activation's cost.
type prepared struct {
	action *activation.ActionDocument
	// digest covers exec (with the code), parameters, limits and annotations: OpenWhisk's
	// action equality without namespace, name, version, revision and binding.
	digest string
	// codeDigest identifies the code, entry point, binary flag and kind (backend.Action.CodeDigest).
	codeDigest string
}

// preparedCache holds prepared actions, dropping the oldest beyond its size. Concurrent
// requests for the same (docid, rev) share one decoding (a burst of cold starts of one action).
type preparedCache struct {
	mu       sync.Mutex
	max      int
	items    map[string]*prepared
	order    []string
	inflight map[string]*decoding
}

type decoding struct {
	done chan struct{}
	p    *prepared
	err  error
}

func newPreparedCache(max int) *preparedCache {
	return &preparedCache{max: max, items: map[string]*prepared{}, inflight: map[string]*decoding{}}
}

// get decodes doc against the manifest, or returns the earlier result for its (docid, rev).
func (c *preparedCache) get(doc *couch.ActionDoc, m *activation.Manifest) (*prepared, error) {
	key := doc.DocID + "\x00" + doc.Rev
	c.mu.Lock()
	if p, ok := c.items[key]; ok {
		c.mu.Unlock()
		return p, nil
	}
	if d, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		<-d.done
		return d.p, d.err
	}
	d := &decoding{done: make(chan struct{})}
	c.inflight[key] = d
	c.mu.Unlock()
	d.p, d.err = c.decode(doc, m)
	c.mu.Lock()
	delete(c.inflight, key)
	if d.err == nil {
		c.items[key] = d.p
		c.order = append(c.order, key)
		for len(c.order) > c.max {
			delete(c.items, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.mu.Unlock()
	close(d.done)
	return d.p, d.err
}

func (c *preparedCache) decode(doc *couch.ActionDoc, m *activation.Manifest) (*prepared, error) {
	a, err := activation.DecodeAction(doc.JSON, m)
	if err != nil {
		return nil, err
	}
	p := &prepared{action: a, digest: hashJSON(a.Exec, a.Parameters, a.Limits, a.Annotations)}
	h := sha256.New()
	h.Write([]byte(a.Exec.Kind + "\x00" + a.Exec.EntryPoint() + "\x00"))
	if a.Exec.Binary {
		h.Write([]byte{1})
	}
	if a.Exec.Code != nil {
		if doc.Attachment != nil {
			h.Write(doc.Attachment)
		} else {
			b, _ := json.Marshal(a.Exec.Code)
			h.Write(b)
		}
	}
	p.codeDigest = hex.EncodeToString(h.Sum(nil))
	return p, nil
}

func hashJSON(vs ...any) string {
	h := sha256.New()
	for _, v := range vs {
		b, _ := json.Marshal(v)
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
