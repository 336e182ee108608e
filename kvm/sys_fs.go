package kvm

// File system calls over the guest's FileTree (fs.go) and its private /tmp. Descriptors that
// name files have kind kindFile in the descriptor table; what they refer to (path, offset,
// flags) lives in guestFS.open, shared between duplicates as Linux shares an open file
// description. Calls on the standard streams go on to the handlers of sys_io.go.

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// kindFile is a descriptor open on a file or directory of the guest's file system.
const kindFile fileKind = "file"

// guestFS is one guest's view of its file system: the shared read-only tree plus what is
// private to the guest (current directory, /tmp, open files). Its state is part of snapshots.
type guestFS struct {
	tree     *FileTree
	cwd      string
	tmp      map[string]*tmpNode // by guest path below /tmp
	tmpBytes int64
	nextIno  uint64
	open     map[uint64]*openFile // by descriptor
}

type tmpNode struct {
	dir   bool
	data  []byte
	mtime int64
	ino   uint64
}

// openFile is an open file description.
type openFile struct {
	path  string
	kind  nodeKind
	flags uint64 // O_ACCMODE and O_APPEND bits of the open
	off   int64
	dir   bool
	// Filled at first use (load): the contents of a small read-only file, or host set for a large
	// host file read on demand; a tmp file's node; a directory listing.
	data   []byte
	size   int64
	host   bool
	loaded bool
	tmp    *tmpNode
	ents   []dirent
	sock   *sockEnd // a socketpair end (sys_sock.go)
}

// Linux open flags.
const (
	oAccmode   = 0x3
	oWronly    = 0x1
	oRdwr      = 0x2
	oCreat     = 0x40
	oExcl      = 0x80
	oTrunc     = 0x200
	oAppend    = 0x400
	oDirectory = 0x10000
	oNofollow  = 0x20000
	oPath      = 0x200000
	oTmpfile   = 0x400000
	atFDCWD    = -100
	// fdCWD is AT_FDCWD as the dirfd argument the *at calls get from their older forms.
	fdCWD      = uint64(atFDCWD & 0xffffffff)
	atSymNoFol = 0x100
	atRemDir   = 0x200
)

func (f *guestFS) init(t *FileTree) {
	f.tree, f.cwd, f.tmp, f.open, f.tmpBytes, f.nextIno = t, "/", nil, nil, 0, 1
}

// fsNode is a resolved guest path.
type fsNode struct {
	kind nodeKind
	path string
	meta hostMeta // nodeHost
	mem  []byte   // nodeMem
	tmp  *tmpNode // nodeTmp; nil for /tmp itself
}

func (n *fsNode) isDir() bool {
	switch n.kind {
	case nodeVirtDir:
		return true
	case nodeHost:
		return n.meta.st.Mode&unix.S_IFMT == unix.S_IFDIR
	case nodeTmp:
		return n.tmp == nil || n.tmp.dir
	}
	return false
}

func (n *fsNode) isLink() bool {
	return n.kind == nodeHost && n.meta.st.Mode&unix.S_IFMT == unix.S_IFLNK
}

// lookup finds one fully resolved guest path (no component of it is a link, but p itself may be).
func (f *guestFS) lookup(p string) (fsNode, unix.Errno) {
	n := fsNode{path: p}
	switch {
	case p == "/tmp":
		n.kind = nodeTmp
		return n, 0
	case strings.HasPrefix(p, "/tmp/"):
		t, ok := f.tmp[p]
		if !ok {
			return n, unix.ENOENT
		}
		n.kind, n.tmp = nodeTmp, t
		return n, 0
	}
	t := f.tree
	if t != nil {
		if b, ok := t.Files[p]; ok {
			n.kind, n.mem = nodeMem, b
			return n, 0
		}
		if t.underHost(p) {
			m := t.lstat(p)
			if m.err != 0 {
				if t.isAncestor(p) {
					n.kind = nodeVirtDir
					return n, 0
				}
				return n, m.err
			}
			n.kind, n.meta = nodeHost, m
			return n, 0
		}
	}
	if t.isAncestor(p) {
		n.kind = nodeVirtDir
		return n, 0
	}
	return n, unix.ENOENT
}

// walk resolves absolute guest path p component by component, following links (the last one
// only when follow is set) inside the guest's namespace.
func (f *guestFS) walk(p string, follow bool) (fsNode, unix.Errno) {
	if len(p) > maxPath {
		return fsNode{}, unix.ENAMETOOLONG
	}
	rest := splitPath(p)
	cur := fsNode{kind: nodeVirtDir, path: "/"}
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case ".":
			continue
		case "..":
			parent := path.Dir(cur.path)
			n, e := f.lookup(parent)
			if e != 0 {
				return fsNode{}, e
			}
			cur = n
			continue
		}
		if !cur.isDir() {
			return fsNode{}, unix.ENOTDIR
		}
		next := path.Join(cur.path, c)
		if len(next) > maxPath {
			return fsNode{}, unix.ENAMETOOLONG
		}
		n, e := f.lookup(next)
		if e != 0 {
			return fsNode{}, e
		}
		last := onlyDots(rest)
		if n.isLink() && (!last || follow || len(rest) > 0) {
			links++
			if links > maxSymlinks {
				return fsNode{}, unix.ELOOP
			}
			target := n.meta.target
			if target == "" {
				return fsNode{}, unix.ENOENT
			}
			if strings.HasPrefix(target, "/") {
				cur = fsNode{kind: nodeVirtDir, path: "/"}
			}
			rest = append(splitPath(target), rest...)
			continue
		}
		cur = n
	}
	return cur, 0
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

func onlyDots(rest []string) bool {
	for _, c := range rest {
		if c != "." {
			return false
		}
	}
	return true
}

// pathArg reads a path argument and makes it absolute against dirfd (AT_FDCWD: the current
// directory).
func (k *kernel) pathArg(dirfd, addr uint64) (string, unix.Errno) {
	p, err := k.mem.cString(addr, maxPath)
	if err != nil {
		if e, ok := err.(unix.Errno); ok {
			return "", e
		}
		return "", unix.EFAULT
	}
	if p == "" {
		return "", unix.ENOENT
	}
	if strings.HasPrefix(p, "/") {
		return p, 0
	}
	base := k.fs.cwd
	if int32(dirfd) != atFDCWD {
		of, e := k.fileOf(dirfd)
		if e != 0 {
			return "", e
		}
		if !of.dir {
			return "", unix.ENOTDIR
		}
		base = of.path
	}
	return base + "/" + p, 0
}

// walkAt resolves the path argument at addr against dirfd (pathArg) to its node in the guest's
// tree, following a final symbolic link when follow is set: the first steps of the *at calls
// that act on an existing node.
func (k *kernel) walkAt(dirfd, addr uint64, follow bool) (fsNode, unix.Errno) {
	p, e := k.pathArg(dirfd, addr)
	if e != 0 {
		return fsNode{}, e
	}
	return k.fs.walk(p, follow)
}

// fileOf returns the open file behind fd: EBADF when fd is not open on a file.
func (k *kernel) fileOf(fd uint64) (*openFile, unix.Errno) {
	kind, ok := k.fds.get(fd)
	if !ok || kind != kindFile {
		return nil, unix.EBADF
	}
	of := k.fs.open[fd]
	if of == nil {
		return nil, unix.EBADF
	}
	return of, 0
}

func (k *kernel) isFile(fd uint64) bool {
	kind, ok := k.fds.get(fd)
	return ok && kind == kindFile
}

// load finds out, at first use, where an open file's bytes are: in memory (in-memory files,
// small host files from the tree's shared cache, /tmp) or, for a large host file, on the host,
// read on demand so a guest cannot make the VMM hold large files in memory.
func (k *kernel) load(of *openFile) unix.Errno {
	if of.loaded || of.kind == nodeTmp {
		return 0
	}
	n, e := k.fs.lookup(of.path)
	if e != 0 {
		return e
	}
	switch n.kind {
	case nodeMem:
		of.data, of.size = n.mem, int64(len(n.mem))
	case nodeHost:
		of.size = n.meta.st.Size
		if of.size <= maxCachedFile {
			b, e := k.fs.tree.hostContent(n.path, of.size)
			if e != 0 {
				return e
			}
			of.data, of.size = b, int64(len(b))
		} else {
			of.host = true
		}
	}
	of.loaded = true
	return 0
}

// fileSize is an open file's size.
func (k *kernel) fileSize(of *openFile) (int64, unix.Errno) {
	if of.kind == nodeTmp {
		if of.tmp == nil {
			return 0, 0
		}
		return int64(len(of.tmp.data)), 0
	}
	if e := k.load(of); e != 0 {
		return 0, e
	}
	return of.size, 0
}

// readFile copies the bytes at off into dst and returns how many there were (short at the end).
func (k *kernel) readFile(of *openFile, dst []byte, off int64) (int, unix.Errno) {
	if off < 0 {
		return 0, unix.EINVAL
	}
	if of.kind == nodeTmp {
		if of.tmp == nil || off >= int64(len(of.tmp.data)) {
			return 0, 0
		}
		return copy(dst, of.tmp.data[off:]), 0
	}
	if e := k.load(of); e != 0 {
		return 0, e
	}
	if of.host {
		return k.fs.tree.preadHost(of.path, dst, off)
	}
	if off >= int64(len(of.data)) {
		return 0, 0
	}
	return copy(dst, of.data[off:]), 0
}

// --- opening and closing ---

func sysOpenFS(k *kernel, a *sysArgs) uint64 {
	return k.openat(fdCWD, a[0], a[1], a[2])
}

func sysOpenatFS(k *kernel, a *sysArgs) uint64 { return k.openat(a[0], a[1], a[2], a[3]) }

func (k *kernel) openat(dirfd, addr, flags, mode uint64) uint64 {
	p, e := k.pathArg(dirfd, addr)
	if e != 0 {
		return errno(e)
	}
	if flags&oTmpfile == oTmpfile {
		return errno(unix.EOPNOTSUPP)
	}
	acc := flags & oAccmode
	writes := acc == oWronly || acc == oRdwr || flags&oTrunc != 0
	n, e := k.fs.walk(p, flags&oNofollow == 0)
	if e == unix.ENOENT && flags&oCreat != 0 {
		return k.createTmp(p, flags)
	}
	if e != 0 {
		return errno(e)
	}
	if flags&oCreat != 0 && flags&oExcl != 0 {
		return errno(unix.EEXIST)
	}
	if n.isLink() {
		return errno(unix.ELOOP) // O_NOFOLLOW on a link
	}
	dir := n.isDir()
	switch {
	case flags&oDirectory != 0 && !dir:
		return errno(unix.ENOTDIR)
	case dir && writes:
		return errno(unix.EISDIR)
	case writes && n.kind != nodeTmp:
		return errno(unix.EROFS)
	}
	of := &openFile{path: n.path, kind: n.kind, flags: flags & (oAccmode | oAppend), dir: dir, tmp: n.tmp}
	if n.kind == nodeHost && !dir && n.meta.st.Mode&unix.S_IFMT != unix.S_IFREG {
		return errno(unix.EACCES) // devices, sockets, fifos of the host stay out of reach
	}
	if flags&oTrunc != 0 && n.tmp != nil && !dir {
		k.fs.tmpBytes -= int64(len(n.tmp.data))
		n.tmp.data = nil
	}
	return k.installFile(of)
}

func (k *kernel) installFile(of *openFile) uint64 {
	fd, ok := k.fds.install(kindFile, 0)
	if !ok {
		return errno(unix.EMFILE)
	}
	if k.fs.open == nil {
		k.fs.open = map[uint64]*openFile{}
	}
	k.fs.open[fd] = of
	return fd
}

// parentTmp resolves the directory that would hold p and returns the new entry's guest path;
// only directories of /tmp can hold new entries.
func (k *kernel) parentTmp(p string) (string, unix.Errno) {
	p = strings.TrimRight(p, "/")
	dir, name := path.Split(p)
	if name == "" || name == "." || name == ".." {
		return "", unix.EEXIST
	}
	if len(name) > 255 {
		return "", unix.ENAMETOOLONG
	}
	parent, e := k.fs.walk(dir, true)
	if e != 0 {
		return "", e
	}
	if !parent.isDir() {
		return "", unix.ENOTDIR
	}
	if parent.kind != nodeTmp {
		return "", unix.EROFS
	}
	return path.Join(parent.path, name), 0
}

const maxTmpEntries = 4096

func (k *kernel) newTmp(p string, dir bool) (*tmpNode, unix.Errno) {
	if len(k.fs.tmp) >= maxTmpEntries {
		return nil, unix.ENOSPC
	}
	if k.fs.tmp == nil {
		k.fs.tmp = map[string]*tmpNode{}
	}
	k.fs.nextIno++
	t := &tmpNode{dir: dir, mtime: hostClock(unix.CLOCK_REALTIME), ino: k.fs.nextIno}
	k.fs.tmp[p] = t
	return t, 0
}

func (k *kernel) createTmp(p string, flags uint64) uint64 {
	np, e := k.parentTmp(p)
	if e != 0 {
		return errno(e)
	}
	if flags&oDirectory != 0 {
		return errno(unix.EINVAL)
	}
	t, e := k.newTmp(np, false)
	if e != 0 {
		return errno(e)
	}
	return k.installFile(&openFile{path: np, kind: nodeTmp, flags: flags & (oAccmode | oAppend), tmp: t})
}

func sysCloseFS(k *kernel, a *sysArgs) uint64 {
	if k.isFile(a[0]) {
		k.closeFile(a[0])
		return 0
	}
	return sysClose(k, a)
}

// dupTo records that newfd now shares oldfd's open file description (after the descriptor
// table was updated by sys_io.go's handler, which returned newfd).
func (k *kernel) dupTo(oldfd, ret uint64) uint64 {
	if int64(ret) < 0 {
		return ret
	}
	if of, e := k.fileOf(oldfd); e == 0 && ret != oldfd {
		k.fs.open[ret] = of
	}
	return ret
}

func sysDupFS(k *kernel, a *sysArgs) uint64 { return k.dupTo(a[0], sysDup(k, a)) }

// replaceTarget closes newfd first when dup2/dup3 replace an open file with a valid oldfd, so
// the file (a socket end) it held is released as Linux does.
func (k *kernel) replaceTarget(oldfd, newfd uint64) {
	if _, ok := k.fds.get(oldfd); ok && oldfd != newfd && k.isFile(newfd) {
		k.closeFile(newfd)
	}
}

func sysDup2FS(k *kernel, a *sysArgs) uint64 {
	if a[0] == a[1] {
		return sysDup2(k, a)
	}
	k.replaceTarget(a[0], a[1])
	return k.dupTo(a[0], sysDup2(k, a))
}

func sysDup3FS(k *kernel, a *sysArgs) uint64 {
	if a[0] == a[1] {
		return errno(unix.EINVAL)
	}
	k.replaceTarget(a[0], a[1])
	return k.dupTo(a[0], sysDup3(k, a))
}

func sysFcntlFS(k *kernel, a *sysArgs) uint64 {
	if !k.isFile(a[0]) {
		return sysFcntl(k, a)
	}
	switch a[1] {
	case fDupfd, fDupfdCloexec:
		return k.dupTo(a[0], sysFcntl(k, a))
	case fGetfl:
		of, e := k.fileOf(a[0])
		if e != 0 {
			return errno(e)
		}
		fl := of.flags
		if of.dir {
			fl |= oDirectory
		}
		return fl
	case fSetfl:
		of, e := k.fileOf(a[0])
		if e != 0 {
			return errno(e)
		}
		of.flags = of.flags&oAccmode | a[2]&(oAppend|oNonblock)
		return 0
	}
	return sysFcntl(k, a)
}

// --- reading, writing, seeking ---

func fileRead(k *kernel, of *openFile, a *sysArgs) uint64 {
	if of.sock != nil {
		return k.sockRead(of, a[1], a[2], false, false)
	}
	n := k.readAt(of, a[1], a[2], of.off)
	if int64(n) > 0 {
		of.off += int64(n)
	}
	return n
}

// fileFunc serves a call on a descriptor that names an open file of the guest's file system.
type fileFunc func(k *kernel, of *openFile, a *sysArgs) uint64

// onFile makes the handler of a call whose first argument is a descriptor: file serves it when
// the descriptor names an open file of the guest's file system, stream (sys_io.go's handler)
// otherwise, which serves the standard streams and refuses descriptors that are not open.
func onFile(stream sysFunc, file fileFunc) sysFunc {
	return func(k *kernel, a *sysArgs) uint64 {
		if !k.isFile(a[0]) {
			return stream(k, a)
		}
		of, e := k.fileOf(a[0])
		if e != 0 {
			return errno(e)
		}
		return file(k, of, a)
	}
}

// positionalFile returns the open file behind fd for the calls that read or write at an offset
// (pread64, pwrite64): ESPIPE for a standard stream (a pipe), EBADF for a descriptor not open.
func (k *kernel) positionalFile(fd uint64) (*openFile, unix.Errno) {
	if !k.isFile(fd) {
		if _, ok := k.fds.get(fd); ok {
			return nil, unix.ESPIPE
		}
		return nil, unix.EBADF
	}
	return k.fileOf(fd)
}

func sysPread64FS(k *kernel, a *sysArgs) uint64 {
	of, e := k.positionalFile(a[0])
	if e != 0 {
		return errno(e)
	}
	if int64(a[3]) < 0 {
		return errno(unix.EINVAL)
	}
	return k.readAt(of, a[1], a[2], int64(a[3]))
}

func (k *kernel) readAt(of *openFile, buf, count uint64, off int64) uint64 {
	if of.sock != nil {
		return errno(unix.ESPIPE)
	}
	if of.dir {
		return errno(unix.EISDIR)
	}
	if of.flags&oAccmode == oWronly {
		return errno(unix.EBADF)
	}
	size, e := k.fileSize(of)
	if e != 0 {
		return errno(e)
	}
	if off >= size {
		return 0
	}
	dst, err := k.mem.user(buf, min(count, maxIO, uint64(size-off)), true)
	if err != nil {
		return errnoOf(err)
	}
	n, e := k.readFile(of, dst, off)
	if e != 0 {
		return errno(e)
	}
	return uint64(n)
}

func fileReadv(k *kernel, of *openFile, a *sysArgs) uint64 {
	if of.sock != nil {
		return errno(unix.EOPNOTSUPP) // no readv on socket ends (nothing has needed it)
	}
	bufs, r := k.iovecs(a[1], a[2], true)
	if r != 0 {
		return r
	}
	if of.dir {
		return errno(unix.EISDIR)
	}
	var total uint64
	for _, b := range bufs {
		n, e := k.readFile(of, b, of.off)
		if e != 0 {
			if total > 0 {
				break
			}
			return errno(e)
		}
		of.off += int64(n)
		total += uint64(n)
		if n < len(b) {
			break
		}
	}
	return total
}

func fileWrite(k *kernel, of *openFile, a *sysArgs) uint64 {
	if of.sock != nil {
		return k.sockWrite(of, a[1], a[2])
	}
	b, err := k.mem.user(a[1], min(a[2], maxIO), false)
	if err != nil {
		return errnoOf(err)
	}
	off := of.off
	if of.flags&oAppend != 0 && of.tmp != nil {
		off = int64(len(of.tmp.data))
	}
	n := k.writeAt(of, b, off)
	if int64(n) > 0 {
		of.off = off + int64(n)
	}
	return n
}

func sysPwrite64FS(k *kernel, a *sysArgs) uint64 {
	of, e := k.positionalFile(a[0])
	if e != 0 {
		return errno(e)
	}
	b, err := k.mem.user(a[1], min(a[2], maxIO), false)
	if err != nil {
		return errnoOf(err)
	}
	if int64(a[3]) < 0 {
		return errno(unix.EINVAL)
	}
	return k.writeAt(of, b, int64(a[3]))
}

func (k *kernel) writeAt(of *openFile, b []byte, off int64) uint64 {
	if of.sock != nil {
		return errno(unix.ESPIPE)
	}
	if of.flags&oAccmode == 0 || of.tmp == nil || of.dir {
		return errno(unix.EBADF)
	}
	if off < 0 || off > k.fs.tree.tmpLimit() {
		return errno(unix.EFBIG) // also keeps off+len(b) from overflowing
	}
	t := of.tmp
	end := off + int64(len(b))
	if grow := end - int64(len(t.data)); grow > 0 {
		if k.fs.tmpBytes+grow > k.fs.tree.tmpLimit() {
			return errno(unix.ENOSPC)
		}
		k.fs.tmpBytes += grow
		t.data = append(t.data, make([]byte, grow)...)
	}
	copy(t.data[off:end], b)
	t.mtime = hostClock(unix.CLOCK_REALTIME)
	return uint64(len(b))
}

func fileWritev(k *kernel, of *openFile, a *sysArgs) uint64 {
	if of.sock != nil {
		return errno(unix.EOPNOTSUPP)
	}
	bufs, r := k.iovecs(a[1], a[2], false)
	if r != 0 {
		return r
	}
	var total uint64
	for _, b := range bufs {
		off := of.off
		if of.flags&oAppend != 0 && of.tmp != nil {
			off = int64(len(of.tmp.data))
		}
		n := k.writeAt(of, b, off)
		if int64(n) < 0 {
			if total > 0 {
				return total
			}
			return n
		}
		of.off = off + int64(n)
		total += n
	}
	return total
}

func sysFtruncateFS(k *kernel, a *sysArgs) uint64 {
	of, e := k.fileOf(a[0])
	if e != 0 {
		return errno(e)
	}
	if of.tmp == nil || of.dir || of.flags&oAccmode == 0 {
		return errno(unix.EINVAL)
	}
	size := int64(a[1])
	if size < 0 {
		return errno(unix.EINVAL)
	}
	t := of.tmp
	grow := size - int64(len(t.data))
	if grow > 0 {
		if k.fs.tmpBytes+grow > k.fs.tree.tmpLimit() {
			return errno(unix.EFBIG)
		}
		t.data = append(t.data, make([]byte, grow)...)
	} else {
		t.data = t.data[:size]
	}
	k.fs.tmpBytes += grow
	return 0
}

func fileLseek(k *kernel, of *openFile, a *sysArgs) uint64 {
	if of.sock != nil {
		return errno(unix.ESPIPE)
	}
	off := int64(a[1])
	var base int64
	switch a[2] {
	case unix.SEEK_SET:
	case unix.SEEK_CUR:
		base = of.off
	case unix.SEEK_END:
		if of.dir {
			return errno(unix.EINVAL)
		}
		size, e := k.fileSize(of)
		if e != 0 {
			return errno(e)
		}
		base = size
	default:
		return errno(unix.EINVAL)
	}
	if base+off < 0 || (off > 0 && base+off < base) {
		return errno(unix.EINVAL)
	}
	of.off = base + off
	return uint64(of.off)
}

// --- metadata ---

// statInfo is what stat, fstat and statx report.
type statInfo struct {
	dev, ino, nlink, size, blocks uint64
	mode                          uint32
	mtime                         int64 // ns
}

func pathIno(p string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(p))
	return h.Sum64() | 1
}

func (k *kernel) statNode(n *fsNode) statInfo {
	switch n.kind {
	case nodeHost:
		st := &n.meta.st
		return statInfo{dev: devHost, ino: st.Ino, nlink: st.Nlink, size: uint64(st.Size), blocks: uint64(st.Blocks),
			mode: st.Mode, mtime: st.Mtim.Nano()}
	case nodeMem:
		return statInfo{dev: devMem, ino: pathIno(n.path), nlink: 1, size: uint64(len(n.mem)),
			blocks: (uint64(len(n.mem)) + 511) / 512, mode: unix.S_IFREG | 0o444}
	case nodeTmp:
		if n.tmp == nil {
			return statInfo{dev: devTmp, ino: 1, nlink: 2, mode: unix.S_IFDIR | 0o1777}
		}
		if n.tmp.dir {
			return statInfo{dev: devTmp, ino: n.tmp.ino, nlink: 2, mode: unix.S_IFDIR | 0o700, mtime: n.tmp.mtime}
		}
		sz := uint64(len(n.tmp.data))
		return statInfo{dev: devTmp, ino: n.tmp.ino, nlink: 1, size: sz, blocks: (sz + 511) / 512, mode: unix.S_IFREG | 0o600, mtime: n.tmp.mtime}
	}
	return statInfo{dev: devMem, ino: pathIno(n.path), nlink: 2, mode: unix.S_IFDIR | 0o555}
}

func (k *kernel) statOpen(of *openFile) (statInfo, unix.Errno) {
	if of.sock != nil {
		return statInfo{dev: devTmp, ino: pathIno(fmt.Sprintf("%p", of.sock)), nlink: 1, mode: unix.S_IFSOCK | 0o777}, 0
	}
	if of.kind == nodeTmp {
		return k.statNode(&fsNode{kind: nodeTmp, path: of.path, tmp: of.tmp}), 0
	}
	n, e := k.fs.lookup(of.path)
	if e != 0 {
		return statInfo{}, e
	}
	return k.statNode(&n), 0
}

func (k *kernel) putStat(addr uint64, s statInfo) uint64 {
	b, err := k.mem.user(addr, 144, true)
	if err != nil {
		return errnoOf(err)
	}
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[0:], s.dev)
	le.PutUint64(b[8:], s.ino)
	le.PutUint64(b[16:], s.nlink)
	le.PutUint32(b[24:], s.mode)
	le.PutUint64(b[48:], s.size)
	le.PutUint64(b[56:], pageSize)
	le.PutUint64(b[64:], s.blocks)
	for _, off := range []int{72, 88, 104} { // atime, mtime, ctime
		le.PutUint64(b[off:], uint64(s.mtime/1e9))
		le.PutUint64(b[off+8:], uint64(s.mtime%1e9))
	}
	return 0
}

// statAt resolves (dirfd, path, flags) for the stat family; emptyOK allows AT_EMPTY_PATH.
func (k *kernel) statAt(dirfd, addr, flags uint64) (statInfo, bool, unix.Errno) {
	if flags&atEmptyPath != 0 {
		if p, err := k.mem.cString(addr, maxPath); err == nil && p == "" {
			if !k.isFile(dirfd) {
				if _, ok := k.fds.get(dirfd); !ok && int32(dirfd) != atFDCWD {
					return statInfo{}, false, unix.EBADF
				}
				if int32(dirfd) == atFDCWD {
					n, e := k.fs.walk(k.fs.cwd, true)
					if e != 0 {
						return statInfo{}, false, e
					}
					return k.statNode(&n), false, 0
				}
				return statInfo{}, true, 0 // a standard stream: the caller answers for it
			}
			of, _ := k.fileOf(dirfd)
			s, e := k.statOpen(of)
			return s, false, e
		}
	}
	n, e := k.walkAt(dirfd, addr, flags&atSymNoFol == 0)
	if e != 0 {
		return statInfo{}, false, e
	}
	return k.statNode(&n), false, 0
}

func sysStatFS(k *kernel, a *sysArgs) uint64 {
	s, _, e := k.statAt(fdCWD, a[0], 0)
	if e != 0 {
		return errno(e)
	}
	return k.putStat(a[1], s)
}

func sysLstatFS(k *kernel, a *sysArgs) uint64 {
	s, _, e := k.statAt(fdCWD, a[0], atSymNoFol)
	if e != 0 {
		return errno(e)
	}
	return k.putStat(a[1], s)
}

func fileFstat(k *kernel, of *openFile, a *sysArgs) uint64 {
	s, e := k.statOpen(of)
	if e != 0 {
		return errno(e)
	}
	return k.putStat(a[1], s)
}

func sysNewfstatatFS(k *kernel, a *sysArgs) uint64 {
	s, std, e := k.statAt(a[0], a[1], a[3])
	if e != 0 {
		return errno(e)
	}
	if std {
		return k.statFIFO(a[2])
	}
	return k.putStat(a[2], s)
}

func sysStatxFS(k *kernel, a *sysArgs) uint64 {
	s, std, e := k.statAt(a[0], a[1], a[2])
	if e != 0 {
		return errno(e)
	}
	if std {
		s = statInfo{ino: 1, nlink: 1, mode: unix.S_IFIFO | 0o600}
	}
	b, err := k.mem.user(a[4], 256, true)
	if err != nil {
		return errnoOf(err)
	}
	clear(b)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 0x7ff) // STATX_BASIC_STATS
	le.PutUint32(b[4:], pageSize)
	le.PutUint32(b[16:], uint32(s.nlink))
	le.PutUint16(b[28:], uint16(s.mode))
	le.PutUint64(b[32:], s.ino)
	le.PutUint64(b[40:], s.size)
	le.PutUint64(b[48:], s.blocks)
	for _, off := range []int{64, 96, 112} { // atime, ctime, mtime
		le.PutUint64(b[off:], uint64(s.mtime/1e9))
		le.PutUint32(b[off+8:], uint32(s.mtime%1e9))
	}
	le.PutUint32(b[136:], uint32(s.dev>>8))
	le.PutUint32(b[140:], uint32(s.dev&0xff))
	return 0
}

func (k *kernel) access(dirfd, addr, mode, flags uint64) uint64 {
	if mode&^7 != 0 {
		return errno(unix.EINVAL)
	}
	n, e := k.walkAt(dirfd, addr, flags&atSymNoFol == 0)
	if e != 0 {
		return errno(e)
	}
	if mode&unix.W_OK != 0 && n.kind != nodeTmp {
		return errno(unix.EROFS)
	}
	if mode&unix.X_OK != 0 && k.statNode(&n).mode&0o111 == 0 {
		return errno(unix.EACCES)
	}
	return 0
}

func sysAccessFS(k *kernel, a *sysArgs) uint64 {
	return k.access(fdCWD, a[0], a[1], 0)
}
func sysFaccessatFS(k *kernel, a *sysArgs) uint64  { return k.access(a[0], a[1], a[2], 0) }
func sysFaccessat2FS(k *kernel, a *sysArgs) uint64 { return k.access(a[0], a[1], a[2], a[3]) }

func (k *kernel) readlinkAt(dirfd, addr, buf, size uint64) uint64 {
	raw, err := k.mem.cString(addr, maxPath)
	if err != nil {
		return errnoOf(err)
	}
	if raw == "/proc/self/exe" {
		return k.readlink(addr, buf, size)
	}
	if int64(size) <= 0 {
		return errno(unix.EINVAL)
	}
	n, e := k.walkAt(dirfd, addr, false)
	if e != 0 {
		return errno(e)
	}
	if !n.isLink() {
		return errno(unix.EINVAL)
	}
	t := []byte(n.meta.target)
	t = t[:min(uint64(len(t)), size)]
	if err := k.mem.writeUser(buf, t); err != nil {
		return errnoOf(err)
	}
	return uint64(len(t))
}

func sysReadlinkFS(k *kernel, a *sysArgs) uint64 {
	return k.readlinkAt(fdCWD, a[0], a[1], a[2])
}
func sysReadlinkatFS(k *kernel, a *sysArgs) uint64 { return k.readlinkAt(a[0], a[1], a[2], a[3]) }

// --- directories ---

func sysGetcwdFS(k *kernel, a *sysArgs) uint64 {
	cwd := append([]byte(k.fs.cwd), 0)
	if a[1] < uint64(len(cwd)) {
		return errno(unix.ERANGE)
	}
	if err := k.mem.writeUser(a[0], cwd); err != nil {
		return errnoOf(err)
	}
	return uint64(len(cwd))
}

func (k *kernel) chdir(p string) uint64 {
	n, e := k.fs.walk(p, true)
	if e != 0 {
		return errno(e)
	}
	if !n.isDir() {
		return errno(unix.ENOTDIR)
	}
	k.fs.cwd = n.path
	return 0
}

func sysChdirFS(k *kernel, a *sysArgs) uint64 {
	p, e := k.pathArg(fdCWD, a[0])
	if e != 0 {
		return errno(e)
	}
	return k.chdir(p)
}

func sysFchdirFS(k *kernel, a *sysArgs) uint64 {
	of, e := k.fileOf(a[0])
	if e != 0 {
		return errno(e)
	}
	return k.chdir(of.path)
}

func (k *kernel) listing(of *openFile) []dirent {
	if of.ents != nil {
		return of.ents
	}
	ents := []dirent{{name: ".", typ: dtDir}, {name: "..", typ: dtDir}}
	if of.kind == nodeTmp {
		pre := of.path + "/"
		var names []dirent
		for p, t := range k.fs.tmp {
			if rest, ok := strings.CutPrefix(p, pre); ok && !strings.Contains(rest, "/") {
				typ := uint8(dtReg)
				if t.dir {
					typ = dtDir
				}
				names = append(names, dirent{name: rest, typ: typ, ino: t.ino})
			}
		}
		sort.Slice(names, func(i, j int) bool { return names[i].name < names[j].name })
		ents = append(ents, names...)
	} else {
		ents = append(ents, k.fs.tree.listDir(of.path, of.kind)...)
	}
	for i := range ents {
		if ents[i].ino == 0 {
			ents[i].ino = pathIno(of.path + "/" + ents[i].name)
		}
	}
	of.ents = ents
	return ents
}

func sysGetdents64FS(k *kernel, a *sysArgs) uint64 {
	of, e := k.fileOf(a[0])
	if e != 0 {
		return errno(e)
	}
	if !of.dir {
		return errno(unix.ENOTDIR)
	}
	ents := k.listing(of)
	buf, err := k.mem.user(a[1], min(a[2], maxIO), true)
	if err != nil {
		return errnoOf(err)
	}
	le := binary.LittleEndian
	n := 0
	for of.off >= 0 && of.off < int64(len(ents)) {
		d := ents[of.off]
		rec := (19 + len(d.name) + 1 + 7) &^ 7
		if n+rec > len(buf) {
			if n == 0 {
				return errno(unix.EINVAL)
			}
			break
		}
		r := buf[n : n+rec]
		clear(r)
		le.PutUint64(r[0:], d.ino)
		le.PutUint64(r[8:], uint64(of.off+1))
		le.PutUint16(r[16:], uint16(rec))
		r[18] = d.typ
		copy(r[19:], d.name)
		n += rec
		of.off++
	}
	return uint64(n)
}

// --- changing /tmp ---

func (k *kernel) mkdir(dirfd, addr uint64) uint64 {
	p, e := k.pathArg(dirfd, addr)
	if e != 0 {
		return errno(e)
	}
	if _, e := k.fs.walk(p, false); e == 0 {
		return errno(unix.EEXIST)
	}
	np, e := k.parentTmp(p)
	if e != 0 {
		return errno(e)
	}
	if _, e := k.newTmp(np, true); e != 0 {
		return errno(e)
	}
	return 0
}

func sysMkdirFS(k *kernel, a *sysArgs) uint64   { return k.mkdir(fdCWD, a[0]) }
func sysMkdiratFS(k *kernel, a *sysArgs) uint64 { return k.mkdir(a[0], a[1]) }

func (k *kernel) unlink(dirfd, addr, flags uint64) uint64 {
	n, e := k.walkAt(dirfd, addr, false)
	if e != 0 {
		return errno(e)
	}
	if n.kind != nodeTmp {
		return errno(unix.EROFS)
	}
	if n.tmp == nil {
		return errno(unix.EBUSY) // /tmp itself
	}
	wantDir := flags&atRemDir != 0
	switch {
	case n.tmp.dir && !wantDir:
		return errno(unix.EISDIR)
	case !n.tmp.dir && wantDir:
		return errno(unix.ENOTDIR)
	case n.tmp.dir:
		pre := n.path + "/"
		for q := range k.fs.tmp {
			if strings.HasPrefix(q, pre) {
				return errno(unix.ENOTEMPTY)
			}
		}
	}
	k.fs.tmpBytes -= int64(len(n.tmp.data))
	delete(k.fs.tmp, n.path)
	return 0
}

func sysUnlinkFS(k *kernel, a *sysArgs) uint64   { return k.unlink(fdCWD, a[0], 0) }
func sysUnlinkatFS(k *kernel, a *sysArgs) uint64 { return k.unlink(a[0], a[1], a[2]) }
func sysRmdirFS(k *kernel, a *sysArgs) uint64 {
	return k.unlink(fdCWD, a[0], atRemDir)
}

func (k *kernel) rename(oldfd, oldAddr, newfd, newAddr uint64) uint64 {
	op, e := k.pathArg(oldfd, oldAddr)
	if e != 0 {
		return errno(e)
	}
	np, e := k.pathArg(newfd, newAddr)
	if e != 0 {
		return errno(e)
	}
	src, e := k.fs.walk(op, false)
	if e != 0 {
		return errno(e)
	}
	if src.kind != nodeTmp || src.tmp == nil {
		return errno(unix.EROFS)
	}
	if dst, e := k.fs.walk(np, false); e == 0 {
		if dst.kind != nodeTmp || dst.tmp == nil {
			return errno(unix.EROFS)
		}
		if dst.path == src.path {
			return 0
		}
		if r := k.unlink(newfd, newAddr, map[bool]uint64{true: atRemDir}[dst.tmp.dir]); int64(r) < 0 {
			return r
		}
	}
	target, e := k.parentTmp(np)
	if e != 0 {
		return errno(e)
	}
	if strings.HasPrefix(target+"/", src.path+"/") {
		return errno(unix.EINVAL)
	}
	moved := map[string]*tmpNode{}
	pre := src.path + "/"
	for q, t := range k.fs.tmp {
		if q == src.path || strings.HasPrefix(q, pre) {
			moved[target+q[len(src.path):]] = t
			delete(k.fs.tmp, q)
		}
	}
	for q, t := range moved {
		k.fs.tmp[q] = t
	}
	return 0
}

func sysRenameFS(k *kernel, a *sysArgs) uint64 {
	return k.rename(fdCWD, a[0], fdCWD, a[1])
}
func sysRenameatFS(k *kernel, a *sysArgs) uint64 { return k.rename(a[0], a[1], a[2], a[3]) }
func sysRenameat2FS(k *kernel, a *sysArgs) uint64 {
	if a[4] != 0 {
		return errno(unix.EINVAL)
	}
	return k.rename(a[0], a[1], a[2], a[3])
}

// --- file-backed mmap ---

// sysMmapFS serves anonymous mappings through sysMmap and file mappings as private copies: the
// region is mapped anonymous (MAP_FIXED over existing mappings as ld.so does) and filled with
// the file's bytes; the rest of the last page reads as zeros. MAP_SHARED of a read-only file is
// the same copy (nobody can write the file); a shared writable mapping of a /tmp file is not
// kept coherent with the file and is refused.
func sysMmapFS(k *kernel, a *sysArgs) uint64 {
	flags := a[3]
	if flags&mapAnonymous != 0 {
		return sysMmap(k, a)
	}
	of, e := k.fileOf(a[4])
	if e != 0 {
		if _, ok := k.fds.get(a[4]); ok {
			return errno(unix.ENODEV) // a standard stream is a pipe: not mappable
		}
		return errno(unix.EBADF)
	}
	const protWrite = 2
	off := a[5]
	switch {
	case of.dir, of.sock != nil:
		return errno(unix.ENODEV)
	case off%pageSize != 0 || int64(off) < 0:
		return errno(unix.EINVAL)
	case flags&mapShared != 0 && a[2]&protWrite != 0:
		return errno(unix.EACCES)
	case of.flags&oAccmode == oWronly:
		return errno(unix.EACCES)
	}
	size, e := k.fileSize(of)
	if e != 0 {
		return errno(e)
	}
	anon := *a
	anon[3] = flags&^mapShared | mapPrivate | mapAnonymous
	anon[4], anon[5] = ^uint64(0), 0
	addr := sysMmap(k, &anon)
	if int64(addr) < 0 {
		return addr
	}
	if off < uint64(size) {
		dst, err := k.mem.user(addr, min(a[1], uint64(size)-off), true)
		if err != nil {
			return errnoOf(err)
		}
		if _, e := k.readFile(of, dst, int64(off)); e != 0 {
			return errno(e)
		}
	}
	return addr
}
