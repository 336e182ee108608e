// Package testenv starts the real components the invoker's tests run against: pouchdb-server
// (CouchDB's HTTP API), an in-process Kafka broker (kfake) and Debian's ZooKeeper. Each start
// fails the test with a message saying what to install when the component is missing.
package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: no free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Couch is a running pouchdb-server.
type Couch struct {
	URL  string
	port int
	dir  string
	cmd  *exec.Cmd
	t    testing.TB
}

// StartCouch starts pouchdb-server on a free port. With persistent set the databases live on
// disk in a temporary directory, so Stop and Start keep them (for outage tests); otherwise in
// memory.
func StartCouch(t testing.TB, persistent bool) *Couch {
	t.Helper()
	if _, err := exec.LookPath("pouchdb-server"); err != nil {
		t.Fatalf("testenv: pouchdb-server is not installed (run scripts/install-deps.sh: npm install -g pouchdb-server@4.2.0): %v", err)
	}
	c := &Couch{port: FreePort(t), dir: t.TempDir(), t: t}
	c.URL = "http://127.0.0.1:" + strconv.Itoa(c.port)
	if !persistent {
		c.dir = ""
	}
	c.Start()
	t.Cleanup(c.Stop)
	return c
}

// Start (re)starts the server on its port and waits until it answers.
func (c *Couch) Start() {
	c.t.Helper()
	work := c.t.TempDir() // pouchdb-server writes config.json and log.txt into its working directory
	args := []string{"-o", "127.0.0.1", "-p", strconv.Itoa(c.port)}
	if c.dir == "" {
		args = append(args, "-m")
	} else {
		args = append(args, "-d", c.dir+string(filepath.Separator))
	}
	cmd := exec.Command("pouchdb-server", args...)
	cmd.Dir = work
	log, err := os.Create(filepath.Join(work, "server.log"))
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("testenv: start pouchdb-server: %v", err)
	}
	c.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(c.URL + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				go func() { <-exited; log.Close() }()
				return
			}
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(filepath.Join(work, "server.log"))
			c.t.Fatalf("testenv: pouchdb-server exited (%v): %s", err, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.Stop()
			out, _ := os.ReadFile(filepath.Join(work, "server.log"))
			c.t.Fatalf("testenv: pouchdb-server did not answer on %s within 30 s: %s", c.URL, out)
		}
	}
}

// Stop kills the server (and its process group). Safe to call twice.
func (c *Couch) Stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	// SIGTERM lets leveldb flush, so a persistent server keeps its data across Stop and Start.
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	for i := 0; i < 200 && syscall.Kill(c.cmd.Process.Pid, 0) == nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	// Wait until the port is closed so a restart can bind it.
	for i := 0; i < 200; i++ {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", c.port))
		if err != nil {
			break
		}
		conn.Close()
		time.Sleep(10 * time.Millisecond)
	}
	c.cmd = nil
}

// Dir is the data directory of a persistent server ("" in memory).
func (c *Couch) Dir() string { return c.dir }
