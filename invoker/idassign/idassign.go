// Package idassign gives an invoker its number from its unique name through ZooKeeper, the way
// the upstream invoker does (protocol spec §9): /invokers/idAssignment/mapping/<uniqueName> holds
// the id as a big-endian two's-complement integer (Java BigInteger.toByteArray); a new name gets
// the number of names already mapped; --overwriteId reassigns a name, taking the id away from
// any other name that held it. Concurrent invokers are serialised on the version of the shared
// counter znode /invokers/idAssignment/counter.
package idassign

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// Paths used by upstream.
const (
	Root        = "/invokers/idAssignment"
	MappingPath = Root + "/mapping"
	CounterPath = Root + "/counter"
)

// Sentinel errors.
var (
	ErrBadName    = errors.New("idassign: invalid unique name")
	ErrBadMapping = errors.New("idassign: stored id cannot be read")
	ErrZooKeeper  = errors.New("idassign: ZooKeeper unavailable")
)

// EncodeID returns id as Java's BigInteger.toByteArray does: minimal big-endian two's complement.
func EncodeID(id int) []byte {
	return twos(big.NewInt(int64(id)))
}

func twos(n *big.Int) []byte {
	if n.Sign() >= 0 {
		b := n.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// Negative: 2^(8k) + n for the smallest k that keeps the sign bit set.
	for k := 1; ; k++ {
		m := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), uint(8*k)), n)
		b := m.Bytes()
		if len(b) == k && b[0]&0x80 != 0 {
			return b
		}
	}
}

// DecodeID reads a big-endian two's-complement integer of any length.
func DecodeID(b []byte) (int, error) {
	if len(b) == 0 || len(b) > 8 {
		return 0, fmt.Errorf("%w: %d bytes", ErrBadMapping, len(b))
	}
	n := new(big.Int).SetBytes(b)
	if b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	if !n.IsInt64() || n.Int64() < 0 || n.Int64() > 1<<31-1 {
		return 0, fmt.Errorf("%w: %s is not a valid invoker id", ErrBadMapping, n)
	}
	return int(n.Int64()), nil
}

// Assign returns the id of uniqueName, creating the mapping if needed. With overwrite non-nil the
// name is (re)mapped to *overwrite. hosts are ZooKeeper host:port addresses.
func Assign(ctx context.Context, hosts []string, uniqueName string, overwrite *int) (int, error) {
	if uniqueName == "" || strings.ContainsAny(uniqueName, "/\x00") || uniqueName == "." || uniqueName == ".." {
		return 0, fmt.Errorf("%w: %q (must be non-empty, without '/')", ErrBadName, uniqueName)
	}
	conn, err := connect(ctx, hosts)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrZooKeeper, err)
		}
		id, retry, err := assignOnce(conn, uniqueName, overwrite)
		if err != nil {
			return 0, err
		}
		if !retry {
			return id, nil
		}
		// Another invoker changed the counter between our read and our write: read again.
		time.Sleep(time.Duration(attempt%10+1) * 10 * time.Millisecond)
	}
}

func connect(ctx context.Context, hosts []string) (*zk.Conn, error) {
	conn, events, err := zk.Connect(hosts, 30*time.Second, zk.WithLogInfo(false), zk.WithLogger(nopLogger{}))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrZooKeeper, strings.Join(hosts, ","), err)
	}
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				// Keep draining so the library never blocks on its event channel.
				go func() {
					for range events {
					}
				}()
				return conn, nil
			}
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("%w: no session with %s: %v", ErrZooKeeper, strings.Join(hosts, ","), ctx.Err())
		}
	}
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

var acl = zk.WorldACL(zk.PermAll)

// ensure creates path and its parents with empty data.
func ensure(conn *zk.Conn, path string) error {
	var cur string
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		cur += "/" + seg
		if _, err := conn.Create(cur, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("%w: create %s: %v", ErrZooKeeper, cur, err)
		}
	}
	return nil
}

// assignOnce makes one optimistic attempt; retry reports a lost race.
func assignOnce(conn *zk.Conn, name string, overwrite *int) (id int, retry bool, err error) {
	if err := ensure(conn, MappingPath); err != nil {
		return 0, false, err
	}
	if _, err := conn.Create(CounterPath, EncodeCounter(0), 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return 0, false, fmt.Errorf("%w: create %s: %v", ErrZooKeeper, CounterPath, err)
	}
	_, counterStat, err := conn.Get(CounterPath)
	if err != nil {
		return 0, false, fmt.Errorf("%w: read %s: %v", ErrZooKeeper, CounterPath, err)
	}
	self := MappingPath + "/" + name
	data, selfStat, err := conn.Get(self)
	switch {
	case err == nil && overwrite == nil:
		id, err := DecodeID(data)
		if err != nil {
			return 0, false, fmt.Errorf("%s: %w", self, err)
		}
		return id, false, nil
	case err != nil && !errors.Is(err, zk.ErrNoNode):
		return 0, false, fmt.Errorf("%w: read %s: %v", ErrZooKeeper, self, err)
	}
	exists := err == nil
	names, _, err := conn.Children(MappingPath)
	if err != nil {
		return 0, false, fmt.Errorf("%w: list %s: %v", ErrZooKeeper, MappingPath, err)
	}
	// Bumping the counter's version in the same transaction serialises concurrent assigners.
	var ops []any
	if overwrite != nil {
		id = *overwrite
		for _, other := range names {
			if other == name {
				continue
			}
			d, st, err := conn.Get(MappingPath + "/" + other)
			if err != nil {
				if errors.Is(err, zk.ErrNoNode) {
					continue
				}
				return 0, false, fmt.Errorf("%w: read %s/%s: %v", ErrZooKeeper, MappingPath, other, err)
			}
			if oid, err := DecodeID(d); err == nil && oid == id {
				ops = append(ops, &zk.DeleteRequest{Path: MappingPath + "/" + other, Version: st.Version})
			}
		}
	} else {
		id = len(names)
	}
	if exists {
		ops = append(ops, &zk.SetDataRequest{Path: self, Data: EncodeID(id), Version: selfStat.Version})
	} else {
		ops = append(ops, &zk.CreateRequest{Path: self, Data: EncodeID(id), Acl: acl})
	}
	ops = append(ops, &zk.SetDataRequest{Path: CounterPath, Data: EncodeCounter(len(names) + 1), Version: counterStat.Version})
	if _, err := conn.Multi(ops...); err != nil {
		if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) || errors.Is(err, zk.ErrNoNode) {
			return 0, true, nil
		}
		return 0, false, fmt.Errorf("%w: assign %s: %v", ErrZooKeeper, self, err)
	}
	return id, false, nil
}

// EncodeCounter is Curator's SharedCount encoding: a 4-byte big-endian int.
func EncodeCounter(n int) []byte {
	return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}
