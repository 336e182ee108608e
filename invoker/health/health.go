// Package health sends the invoker's PingMessage on the health topic about once a second while
// the invoker is enabled (protocol spec §4). Disabling sends one ping with isEnabled:false and
// stops the pings; the controller then marks the invoker Offline at once.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
	"go.uber.org/zap"
)

// Sender delivers one ping record.
type Sender func(ctx context.Context, value []byte) error

// Pinger owns the ping schedule. It is safe for concurrent use.
type Pinger struct {
	instance activation.InvokerInstanceID
	send     Sender
	interval time.Duration
	log      *zap.Logger

	mu      sync.Mutex
	enabled bool
	wake    chan struct{}
}

// New returns an enabled pinger; Run starts sending.
func New(instance activation.InvokerInstanceID, send Sender, interval time.Duration, log *zap.Logger) *Pinger {
	if log == nil {
		log = zap.NewNop()
	}
	return &Pinger{instance: instance, send: send, interval: interval, log: log, enabled: true, wake: make(chan struct{}, 1)}
}

func (p *Pinger) ping(ctx context.Context, enabled bool) error {
	body, err := json.Marshal(activation.NewPing(p.instance, enabled))
	if err != nil {
		return fmt.Errorf("health: encoding ping: %w", err)
	}
	return p.send(ctx, body)
}

// Run sends a ping at once and then every interval while enabled, until ctx ends.
func (p *Pinger) Run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	p.RunTicks(ctx, t.C)
}

// RunTicks is Run driven by ticks instead of a clock: a ping at once, then one per tick (or
// after Enable) while enabled.
func (p *Pinger) RunTicks(ctx context.Context, ticks <-chan time.Time) {
	for {
		p.mu.Lock()
		enabled := p.enabled
		p.mu.Unlock()
		if enabled {
			sctx, cancel := context.WithTimeout(ctx, p.interval*5)
			if err := p.ping(sctx, true); err != nil && ctx.Err() == nil {
				p.log.Warn("health ping not sent", zap.Error(err))
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		case <-p.wake:
		}
	}
}

// Enabled reports whether pings are being sent.
func (p *Pinger) Enabled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.enabled
}

// Enable resumes the pings; it reports whether the state changed.
func (p *Pinger) Enable() bool {
	p.mu.Lock()
	changed := !p.enabled
	p.enabled = true
	p.mu.Unlock()
	if changed {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	return changed
}

// Disable sends one ping with isEnabled:false and stops the pings; it reports whether the state
// changed. The disabled ping is sent even when already disabled, as upstream does.
func (p *Pinger) Disable(ctx context.Context) (bool, error) {
	p.mu.Lock()
	changed := p.enabled
	p.enabled = false
	p.mu.Unlock()
	return changed, p.ping(ctx, false)
}
