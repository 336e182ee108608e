package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/snapinvoker/snapinvoker/kvm"
)

const vmUsage = `usage:
  snapinvoker vm run [--mem 256M] [--timeout 5s] [--stats] -- PROGRAM [ARGS...]
  snapinvoker vm snapshot --at-read -o FILE [--mem 256M] [--timeout 5s] -- PROGRAM [ARGS...]
  snapinvoker vm restore [--timeout 5s] [--stats] FILE

PROGRAM is a static x86-64 Linux executable run as a KVM guest with no guest kernel. The guest
reads this process's stdin and writes its stdout and stderr; what it writes to fd 3 (the
actionloop result channel) is shown on stderr prefixed "fd3: ".`

// runVM dispatches vm run|snapshot|restore.
func runVM(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("missing subcommand\n%s", vmUsage)
	}
	switch args[0] {
	case "run":
		return vmRun(ctx, args[1:])
	case "snapshot":
		return vmSnapshot(ctx, args[1:])
	case "restore":
		return vmRestore(ctx, args[1:])
	case "-h", "--help", "help":
		fmt.Println(vmUsage)
		return nil
	}
	return fmt.Errorf("unknown subcommand %q\n%s", args[0], vmUsage)
}

// vmFlags are the flags the subcommands share.
type vmFlags struct {
	fs      *flag.FlagSet
	mem     *string
	timeout *time.Duration
	stats   *bool
}

func newVMFlags(name string) *vmFlags {
	fs := flag.NewFlagSet("vm "+name, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(os.Stderr, vmUsage) }
	return &vmFlags{
		fs:      fs,
		mem:     fs.String("mem", "256M", "guest memory (K, M or G suffix)"),
		timeout: fs.Duration("timeout", 0, "stop the guest after this long (0: no limit)"),
		stats:   fs.Bool("stats", false, "print system call counts when the guest stops"),
	}
}

// parseSize reads "256M", "1G", "4096K" or a byte count.
func parseSize(s string) (uint64, error) {
	mult := uint64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("--mem %q: want a size such as 256M", s)
	}
	return n * mult, nil
}

// guestConfig builds the config for PROGRAM ARGS with this process's output streams.
func (f *vmFlags) guestConfig(prog string, args []string) (kvm.Config, error) {
	mem, err := parseSize(*f.mem)
	if err != nil {
		return kvm.Config{}, err
	}
	return kvm.Config{
		Memory: mem, Args: append([]string{prog}, args...), ExePath: prog,
		Env:    []string{"PATH=/usr/bin:/bin", "HOME=/"},
		Stdout: os.Stdout, Stderr: os.Stderr, Result: &prefixWriter{w: os.Stderr, prefix: "fd3: ", bol: true},
	}, nil
}

func vmRun(ctx context.Context, args []string) error {
	f := newVMFlags("run")
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	if f.fs.NArg() == 0 {
		return fmt.Errorf("missing PROGRAM\n%s", vmUsage)
	}
	prog := f.fs.Arg(0)
	cfg, err := f.guestConfig(prog, f.fs.Args()[1:])
	if err != nil {
		return err
	}
	g, start, done, err := bootGuest(ctx, prog, cfg)
	if err != nil {
		return err
	}
	defer done()
	return driveGuest(ctx, g, f, start)
}

func vmSnapshot(ctx context.Context, args []string) error {
	f := newVMFlags("snapshot")
	atRead := f.fs.Bool("at-read", false, "stop at the first blocking stdin read and snapshot there (required)")
	out := f.fs.String("o", "", "snapshot file to write")
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	if !*atRead || *out == "" || f.fs.NArg() == 0 {
		return fmt.Errorf("need --at-read, -o FILE and PROGRAM\n%s", vmUsage)
	}
	prog := f.fs.Arg(0)
	cfg, err := f.guestConfig(prog, f.fs.Args()[1:])
	if err != nil {
		return err
	}
	cfg.Timeout = *f.timeout
	g, start, done, err := bootGuest(ctx, prog, cfg)
	if err != nil {
		return err
	}
	defer done()
	ex, err := g.Run(ctx)
	if err != nil {
		return err
	}
	if ex.Reason != kvm.BlockedOnRead {
		printExit(ex, time.Since(start), *f.stats)
		return fmt.Errorf("%s stopped (%v) before it read stdin: nothing to snapshot", prog, ex.Reason)
	}
	if err := g.WriteSnapshot(*out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "vm: snapshot of %s at its first stdin read written to %s (%v, %d syscalls)\n",
		prog, *out, time.Since(start).Round(time.Microsecond), total(ex.Syscalls))
	return nil
}

// bootGuest reads PROGRAM and boots it with cfg on a newly opened /dev/kvm. done closes the
// guest, then the host; start is taken before the boot, so the times printed include it.
func bootGuest(ctx context.Context, prog string, cfg kvm.Config) (g *kvm.Guest, start time.Time, done func(), err error) {
	code, err := readProgram(prog)
	if err != nil {
		return nil, time.Time{}, nil, err
	}
	h, err := kvm.Open()
	if err != nil {
		return nil, time.Time{}, nil, err
	}
	start = time.Now()
	g, err = h.New(ctx, cfg, code)
	if err != nil {
		h.Close()
		return nil, time.Time{}, nil, err
	}
	return g, start, func() { g.Close(); h.Close() }, nil
}

func vmRestore(ctx context.Context, args []string) error {
	f := newVMFlags("restore")
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	if f.fs.NArg() != 1 {
		return fmt.Errorf("need exactly one snapshot FILE\n%s", vmUsage)
	}
	h, err := kvm.Open()
	if err != nil {
		return err
	}
	defer h.Close()
	start := time.Now()
	snap, err := h.OpenSnapshot(f.fs.Arg(0))
	if err != nil {
		return err
	}
	defer snap.Close()
	cfg, err := f.guestConfig("snapshot", nil)
	if err != nil {
		return err
	}
	cfg.Memory = 0
	g, err := h.Restore(ctx, snap, cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	return driveGuest(ctx, g, f, start)
}

// driveGuest runs the guest, feeding it this process's stdin whenever it blocks on a read,
// until it stops for another reason; then it reports why and exits with the guest's status.
func driveGuest(ctx context.Context, g *kvm.Guest, f *vmFlags, start time.Time) error {
	if *f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *f.timeout)
		defer cancel()
	}
	in := stdinChunks(ctx)
	for {
		ex, err := g.Run(ctx)
		if err != nil {
			return err
		}
		if ex.Reason == kvm.BlockedOnRead {
			select {
			case chunk, ok := <-in:
				if !ok {
					g.CloseStdin()
				} else {
					g.Feed(chunk)
				}
				continue
			case <-ctx.Done():
				ex.Reason = kvm.Deadline
			}
		}
		printExit(ex, time.Since(start), *f.stats)
		switch {
		case ex.Reason == kvm.Exited && ex.Code == 0:
			return nil
		case ex.Reason == kvm.Exited:
			os.Exit(ex.Code)
		}
		return fmt.Errorf("guest stopped: %v", ex.Reason)
	}
}

// stdinChunks delivers this process's stdin in chunks; the channel closes at EOF.
func stdinChunks(ctx context.Context) <-chan []byte {
	ch := make(chan []byte)
	go func() {
		defer close(ch)
		r := bufio.NewReader(os.Stdin)
		for {
			buf := make([]byte, 64<<10)
			n, err := r.Read(buf)
			if n > 0 {
				select {
				case ch <- buf[:n]:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

func printExit(ex kvm.Exit, took time.Duration, stats bool) {
	msg := fmt.Sprintf("vm: %v", ex.Reason)
	switch ex.Reason {
	case kvm.Exited:
		msg += fmt.Sprintf(" with status %d", ex.Code)
	case kvm.Fault, kvm.Unsupported, kvm.MemoryLimit:
		msg += fmt.Sprintf(": %v (rip %#x rsp %#x)", ex.Err, ex.Regs.RIP, ex.Regs.RSP)
	}
	fmt.Fprintf(os.Stderr, "%s after %v, %d system calls\n", msg, took.Round(time.Microsecond), total(ex.Syscalls))
	if len(ex.ENOSYS) > 0 {
		fmt.Fprintf(os.Stderr, "vm: answered ENOSYS: %s\n", countList(ex.ENOSYS))
	}
	if stats {
		fmt.Fprintf(os.Stderr, "vm: system calls: %s\n", countList(ex.Syscalls))
	}
	if ex.OutputTruncated {
		fmt.Fprintln(os.Stderr, "vm: output truncated at the output limit")
	}
}

func total(m map[uint64]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}

func countList(m map[uint64]uint64) string {
	nrs := make([]uint64, 0, len(m))
	for nr := range m {
		nrs = append(nrs, nr)
	}
	sort.Slice(nrs, func(i, j int) bool { return m[nrs[i]] > m[nrs[j]] || m[nrs[i]] == m[nrs[j]] && nrs[i] < nrs[j] })
	parts := make([]string, len(nrs))
	for i, nr := range nrs {
		parts[i] = fmt.Sprintf("%s(%d)×%d", kvm.SyscallName(nr), nr, m[nr])
	}
	return strings.Join(parts, " ")
}

func readProgram(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read program: %w", err)
	}
	return b, nil
}

// prefixWriter writes each line of its input to w with a prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
	bol    bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var out []byte
	for _, c := range b {
		if p.bol {
			out = append(out, p.prefix...)
		}
		out = append(out, c)
		p.bol = c == '\n'
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}
