package runtimes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrNoProbe: the kernel does not show what the process is blocked on (/proc/<pid>/syscall is
// missing or unreadable); the caller proceeds without knowing.
var ErrNoProbe = errors.New("runtimes: cannot observe the launcher's system call")

// idlePoll is how often WaitIdle looks.
const idlePoll = time.Millisecond

// WaitIdle waits until the process's main thread is blocked reading fd 0: a launcher that has
// finished booting and waits for its next line (the init line, for a fresh one). That is the
// state the unikernel driver snapshots and the state a prewarmed container should be in when it
// is handed out, so a start can include the runtime's boot and /init does not. It reads
// /proc/<pid>/syscall ("0 0x0 …" is read(0, …)). Errors: ErrExited if the process ended first,
// ErrNoProbe if the kernel does not tell, or the context's error.
func (p *Process) WaitIdle(ctx context.Context) error {
	path := "/proc/" + strconv.Itoa(p.Pid()) + "/syscall"
	t := time.NewTicker(idlePoll)
	defer t.Stop()
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			if _, serr := os.Stat(filepath.Dir(path)); serr != nil {
				// The process is gone (reaped): its Wait is about to report it.
				<-p.done
				return fmt.Errorf("%w while booting: %v", ErrExited, p.cmd.ProcessState)
			}
			select {
			case <-p.done:
				return fmt.Errorf("%w while booting: %v", ErrExited, p.cmd.ProcessState)
			default:
			}
			return fmt.Errorf("%w: %v", ErrNoProbe, err)
		}
		f := strings.Fields(string(b))
		if len(f) >= 2 && f[0] == "0" && (f[1] == "0x0" || f[1] == "0") {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w while booting: %v", ErrExited, p.cmd.ProcessState)
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
