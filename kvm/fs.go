package kvm

// The guest's file system: an explicit, read-only tree of host paths and in-memory files, plus a
// private in-memory writable /tmp. Nothing else of the host exists for the guest (ENOENT).
//
// Paths are resolved by the VMM one component at a time in the guest's namespace: a symbolic
// link met on the way is read from the host and its target resolved again from the guest's point
// of view, so a link inside a listed directory that points outside the listed paths leads to
// ENOENT, never to the host file. The host side of the tree (file contents, metadata, directory
// listings) is read once and cached in the FileTree, which every guest built from the same tree
// shares; the tree is assumed not to change while guests use it (it is the runtime's install).

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// FileTree is the file system a guest sees. Fill the exported fields, then hand the same
// *FileTree to every guest (and restore) of one runtime: its host-side cache is shared and safe
// for concurrent use. Do not change the fields after the first guest used it.
type FileTree struct {
	// Host lists absolute host paths the guest sees read-only under the same names: a file, or a
	// directory with everything below it. The directories above a listed path appear as
	// read-only directories holding only what leads to listed paths. Symbolic links inside are
	// followed only to targets that are themselves visible. /tmp cannot be listed.
	Host []string
	// Files are read-only in-memory files at absolute guest paths (a launcher, an action's code);
	// they shadow host files of the same name.
	Files map[string][]byte
	// TmpLimit bounds the bytes of file data the guest keeps in its private /tmp; 0 means 16 MiB.
	TmpLimit int64

	once    sync.Once
	initErr error
	mu      sync.Mutex
	meta    map[string]hostMeta // lstat results (and symlink targets) by host path
	content map[string][]byte   // file contents by host path
	dirs    map[string][]dirent // host directory listings
	cached  int64               // bytes in content
}

const (
	defaultTmpLimit = 16 << 20
	maxFileBytes    = 256 << 20 // the largest in-memory file a tree may list
	maxCachedFile   = 1 << 20   // larger host files are read from the host on demand, not kept
	maxCacheBytes   = 256 << 20 // past this, small host files are read without being kept
	maxMetaEntries  = 1 << 16   // a guest probing many names cannot grow the cache without bound
	maxPath         = 4096
	maxSymlinks     = 40
)

// check validates the tree once; the error wraps ErrBadConfig.
func (t *FileTree) check() error {
	t.once.Do(func() {
		t.meta, t.content, t.dirs = map[string]hostMeta{}, map[string][]byte{}, map[string][]dirent{}
		bad := func(field, p, why string) {
			if t.initErr == nil {
				t.initErr = fmt.Errorf("%w: Files.%s %q %s", ErrBadConfig, field, p, why)
			}
		}
		valid := func(field, p string) {
			switch {
			case !path.IsAbs(p) || path.Clean(p) != p || strings.IndexByte(p, 0) >= 0:
				bad(field, p, "is not a clean absolute path")
			case p == "/":
				bad(field, p, "would expose the whole host")
			case p == "/tmp" || strings.HasPrefix(p, "/tmp/"):
				bad(field, p, "is inside the guest's private /tmp")
			case len(p) > maxPath:
				bad(field, p, "is too long")
			}
		}
		for _, p := range t.Host {
			valid("Host", p)
		}
		for p, b := range t.Files {
			valid("Files", p)
			if len(b) > maxFileBytes {
				bad("Files", p, "is too large")
			}
		}
		if t.TmpLimit < 0 {
			t.initErr = fmt.Errorf("%w: Files.TmpLimit %d is negative", ErrBadConfig, t.TmpLimit)
		}
	})
	return t.initErr
}

func (t *FileTree) tmpLimit() int64 {
	if t == nil || t.TmpLimit == 0 {
		return defaultTmpLimit
	}
	return t.TmpLimit
}

// nodeKind says where a guest path lives.
type nodeKind int

const (
	nodeNone    nodeKind = iota
	nodeVirtDir          // a directory above listed paths (or the root)
	nodeMem              // an in-memory file of FileTree.Files
	nodeHost             // a host path at or below a listed one
	nodeTmp              // the private /tmp or something in it
)

// Fake device numbers, so st_dev/st_ino pairs of different sources never collide.
const (
	devHost = 0x801
	devMem  = 0x802
	devTmp  = 0x803
)

// hostMeta is a cached lstat of a host path.
type hostMeta struct {
	err    unix.Errno
	st     unix.Stat_t
	target string // for a symbolic link
}

// underHost reports whether guest path p is a listed host path or below one.
func (t *FileTree) underHost(p string) bool {
	if t == nil {
		return false
	}
	for _, h := range t.Host {
		if p == h || strings.HasPrefix(p, h+"/") {
			return true
		}
	}
	return false
}

// isAncestor reports whether p is a directory above a listed host path or in-memory file.
func (t *FileTree) isAncestor(p string) bool {
	if p == "/" {
		return true
	}
	if t == nil {
		return false
	}
	pre := p + "/"
	for _, h := range t.Host {
		if strings.HasPrefix(h, pre) {
			return true
		}
	}
	for f := range t.Files {
		if strings.HasPrefix(f, pre) {
			return true
		}
	}
	return false
}

// lstat returns the host's lstat of p (a path the caller checked is visible), cached.
func (t *FileTree) lstat(p string) hostMeta {
	t.mu.Lock()
	m, ok := t.meta[p]
	t.mu.Unlock()
	if ok {
		return m
	}
	if err := unix.Lstat(p, &m.st); err != nil {
		m.err = errnoOr(err, unix.ENOENT)
	} else if m.st.Mode&unix.S_IFMT == unix.S_IFLNK {
		target, err := os.Readlink(p)
		if err != nil {
			m.err = errnoOr(err, unix.ENOENT)
		}
		m.target = target
	}
	t.mu.Lock()
	if len(t.meta) >= maxMetaEntries {
		clear(t.meta)
	}
	t.meta[p] = m
	t.mu.Unlock()
	return m
}

func errnoOr(err error, def unix.Errno) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return def
}

// hostContent returns the contents of host file p (visible, regular), cached.
func (t *FileTree) hostContent(p string, size int64) ([]byte, unix.Errno) {
	if size > maxFileBytes {
		return nil, unix.EFBIG
	}
	t.mu.Lock()
	b, ok := t.content[p]
	t.mu.Unlock()
	if ok {
		return b, 0
	}
	// O_NOFOLLOW: the path was resolved component by component; a link swapped in since is
	// refused rather than followed.
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, errnoOr(err, unix.EIO)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	b = make([]byte, 0, size)
	for int64(len(b)) <= maxFileBytes {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil || n == 0 {
			break
		}
	}
	if int64(len(b)) > maxFileBytes {
		return nil, unix.EFBIG
	}
	t.mu.Lock()
	if t.cached+int64(len(b)) <= maxCacheBytes {
		t.content[p] = b
		t.cached += int64(len(b))
	}
	t.mu.Unlock()
	return b, 0
}

// preadHost reads host file p (visible, regular, resolved) at off into dst, opening it for this
// read only: large files are never held by the VMM.
func (t *FileTree) preadHost(p string, dst []byte, off int64) (int, unix.Errno) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return 0, errnoOr(err, unix.EIO)
	}
	defer unix.Close(fd)
	n := 0
	for n < len(dst) {
		m, err := unix.Pread(fd, dst[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if n > 0 {
				break
			}
			return 0, errnoOr(err, unix.EIO)
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, 0
}

// dirent is one directory entry as getdents64 reports it.
type dirent struct {
	name string
	typ  uint8 // DT_*
	ino  uint64
}

const (
	dtDir = 4
	dtReg = 8
	dtLnk = 10
)

func dtOf(mode uint32) uint8 {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return dtDir
	case unix.S_IFLNK:
		return dtLnk
	case unix.S_IFREG:
		return dtReg
	}
	return uint8((mode & unix.S_IFMT) >> 12)
}

// listDir lists a visible directory of the tree (not /tmp): host entries, in-memory files and
// the directories leading to listed paths, sorted and without duplicates.
func (t *FileTree) listDir(p string, kind nodeKind) []dirent {
	if t != nil && kind == nodeHost {
		t.mu.Lock()
		d, ok := t.dirs[p]
		t.mu.Unlock()
		if ok {
			return t.withVirtual(p, d)
		}
		if ents, err := os.ReadDir(p); err == nil {
			for _, e := range ents {
				d = append(d, dirent{name: e.Name(), typ: dtOf(modeOfDirEntry(e))})
			}
		}
		t.mu.Lock()
		if len(t.dirs) < maxMetaEntries {
			t.dirs[p] = d
		}
		t.mu.Unlock()
		return t.withVirtual(p, d)
	}
	return t.withVirtual(p, nil)
}

func modeOfDirEntry(e os.DirEntry) uint32 {
	switch m := e.Type(); {
	case m.IsDir():
		return unix.S_IFDIR
	case m&os.ModeSymlink != 0:
		return unix.S_IFLNK
	case m.IsRegular():
		return unix.S_IFREG
	}
	return 0
}

// withVirtual adds to host entries d of directory p the in-memory files and the directories
// leading to listed paths that sit directly in p.
func (t *FileTree) withVirtual(p string, d []dirent) []dirent {
	seen := map[string]bool{}
	out := make([]dirent, 0, len(d)+4)
	for _, e := range d {
		seen[e.name] = true
		out = append(out, e)
	}
	pre := p + "/"
	if p == "/" {
		pre = "/"
		if !seen["tmp"] {
			seen["tmp"] = true
			out = append(out, dirent{name: "tmp", typ: dtDir})
		}
	}
	add := func(full string, leafType func() (uint8, bool)) {
		if !strings.HasPrefix(full, pre) {
			return
		}
		rest := full[len(pre):]
		name, _, deeper := strings.Cut(rest, "/")
		if name == "" || seen[name] {
			return
		}
		seen[name] = true
		typ := uint8(dtDir)
		if !deeper {
			var ok bool
			if typ, ok = leafType(); !ok {
				return
			}
		}
		out = append(out, dirent{name: name, typ: typ})
	}
	if t != nil {
		for _, h := range t.Host {
			add(h, func() (uint8, bool) {
				m := t.lstat(h)
				return dtOf(m.st.Mode), m.err == 0
			})
		}
		for f := range t.Files {
			add(f, func() (uint8, bool) { return dtReg, true })
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
