package container

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNoCgroups: neither a cgroup v2 unified hierarchy nor a v1 memory hierarchy was found.
var ErrNoCgroups = errors.New("container: no usable cgroup hierarchy (need v2 at the root, or v1 with memory)")

// cgroups knows the host's cgroup layout: v2 (unified at the root, most clusters) or v1 (one
// hierarchy per controller; also the hybrid layout where /sys/fs/cgroup/unified holds only a
// few v2 controllers, as on the development machines, which runc drives as v1).
type cgroups struct {
	root string // usually /sys/fs/cgroup
	v2   bool
}

func detectCgroups(root string) (cgroups, error) {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return cgroups{root: root, v2: true}, nil
	}
	if _, err := os.Stat(filepath.Join(root, "memory", "memory.limit_in_bytes")); err == nil {
		return cgroups{root: root}, nil
	}
	return cgroups{}, fmt.Errorf("%w under %s", ErrNoCgroups, root)
}

func (c cgroups) String() string {
	if c.v2 {
		return "v2"
	}
	return "v1"
}

// memoryDir is the memory controller's directory of the cgroup at path ("/snapinvoker/x").
func (c cgroups) memoryDir(path string) string {
	if c.v2 {
		return filepath.Join(c.root, path)
	}
	return filepath.Join(c.root, "memory", path)
}

// oomKills is the number of processes the kernel's OOM killer ended in the cgroup because of
// its memory limit: v1 memory.oom_control "oom_kill", v2 memory.events "oom_kill".
func (c cgroups) oomKills(path string) (int64, error) {
	file := filepath.Join(c.memoryDir(path), "memory.oom_control")
	if c.v2 {
		file = filepath.Join(c.memoryDir(path), "memory.events")
	}
	return readKeyed(file, "oom_kill")
}

// memoryUsage is the memory the cgroup holds now, in bytes.
func (c cgroups) memoryUsage(path string) (int64, error) {
	file := filepath.Join(c.memoryDir(path), "memory.usage_in_bytes")
	if c.v2 {
		file = filepath.Join(c.memoryDir(path), "memory.current")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("container: cgroup memory usage: %w", err)
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// readKeyed reads "key value" lines and returns key's value.
func readKeyed(file, key string) (int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, fmt.Errorf("container: cgroup counters: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("container: %s has no %q line", file, key)
}
