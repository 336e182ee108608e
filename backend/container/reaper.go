package container

import (
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// reapOrphans runs when the proxy is PID 1 of its container's PID namespace: processes an action
// spawned and abandoned are re-parented to it, and unreaped they would hold PIDs against the
// container's pids limit until it is destroyed. On every SIGCHLD it reaps the zombie children
// listed in /proc except keep(pid) ones (the launcher, whose exit os/exec collects itself).
func reapOrphans(keep func(pid int) bool, stop <-chan struct{}) {
	sig := make(chan os.Signal, 16)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	self := os.Getpid()
	for {
		select {
		case <-stop:
			return
		case <-sig:
		}
		for _, pid := range zombieChildren(self) {
			if !keep(pid) {
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			}
		}
	}
}

// zombieChildren lists the processes in state Z whose parent is ppid.
func zombieChildren(ppid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) S ppid ...": comm may hold spaces and parentheses; fields follow the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 2 && f[0] == "Z" && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}
