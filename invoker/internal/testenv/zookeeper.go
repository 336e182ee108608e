package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// zooKeeperJar is Debian's ZooKeeper (package zookeeper); its manifest's Class-Path names the
// other jars it needs under /usr/share/java.
const zooKeeperJar = "/usr/share/java/zookeeper.jar"

// StartZooKeeper starts a standalone ZooKeeper server (Debian's) with a temporary data directory
// on a free port and returns its host:port.
func StartZooKeeper(t testing.TB) string {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		t.Fatalf("testenv: java is not installed (run scripts/install-deps.sh): %v", err)
	}
	if _, err := os.Stat(zooKeeperJar); err != nil {
		t.Fatalf("testenv: Debian's zookeeper is not installed (run scripts/install-deps.sh: apt-get install zookeeper): %v", err)
	}
	port := FreePort(t)
	dir := t.TempDir()
	cmd := exec.Command(java, "-Xmx128m", "-Dzookeeper.admin.enableServer=false",
		"-cp", zooKeeperJar, "org.apache.zookeeper.server.ZooKeeperServerMain",
		strconv.Itoa(port), filepath.Join(dir, "data"))
	log, err := os.Create(filepath.Join(dir, "zookeeper.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start ZooKeeper: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); log.Close() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(90 * time.Second)
	for {
		// Ready means a ZooKeeper session can be established, not merely that the port is open.
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			if zkReady(addr) {
				return addr
			}
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(filepath.Join(dir, "zookeeper.log"))
			t.Fatalf("testenv: ZooKeeper exited (%v): %s", err, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(dir, "zookeeper.log"))
			t.Fatalf("testenv: ZooKeeper on %s gave no session within 90 s: %s", addr, out)
		}
	}
}

// zkReady reports whether a session with the server at addr is established within 5 s.
func zkReady(addr string) bool {
	conn, events, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		return false
	}
	defer conn.Close()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}
