package invoker

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Blacklist is the set of blocked namespaces (upstream NamespaceBlacklist): refreshed from the
// subjects database's view namespaceThrottlings/blockedNamespaces every poll interval. An
// activation of a blocked namespace is refused with an application error, acked shrunk and not
// stored.
type Blacklist struct {
	load func(ctx context.Context) ([]string, error)
	log  *zap.Logger

	mu      sync.RWMutex
	blocked map[string]bool
}

// NewBlacklist returns an empty blacklist that load fills.
func NewBlacklist(load func(ctx context.Context) ([]string, error), log *zap.Logger) *Blacklist {
	if log == nil {
		log = zap.NewNop()
	}
	return &Blacklist{load: load, log: log, blocked: map[string]bool{}}
}

// Blocked reports whether namespace is blocked.
func (b *Blacklist) Blocked(namespace string) bool {
	if b == nil {
		return false
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.blocked[namespace]
}

// Refresh reloads the set; on failure the previous set stays.
func (b *Blacklist) Refresh(ctx context.Context) error {
	names, err := b.load(ctx)
	if err != nil {
		b.log.Warn("namespace blacklist not refreshed; keeping the previous one", zap.Error(err))
		return err
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	b.mu.Lock()
	changed := len(set) != len(b.blocked)
	b.blocked = set
	b.mu.Unlock()
	if changed {
		b.log.Info("namespace blacklist refreshed", zap.Int("blocked", len(set)))
	}
	return nil
}

// Run refreshes at once and then every interval until ctx ends.
func (b *Blacklist) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_ = b.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
