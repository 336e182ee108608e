package kvm

// The guest file system's part of a snapshot: the tree's description, the current directory,
// /tmp and the open files (socket ends included).

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// fsState is the guest's private file-system state in a snapshot.
type fsState struct {
	// Tree is the guest's file tree, so that a restore without Config.Files sees the same files.
	Tree *treeSpec   `json:",omitempty"`
	Cwd  string      `json:",omitempty"`
	Tmp  []tmpState  `json:",omitempty"`
	Open []openState `json:",omitempty"`
}

type tmpState struct {
	Path  string
	Dir   bool   `json:",omitempty"`
	Data  []byte `json:",omitempty"`
	Mtime int64
	Ino   uint64
}

type openState struct {
	FDs   []uint64
	Path  string
	Kind  nodeKind
	Flags uint64
	Off   int64
	Dir   bool       `json:",omitempty"`
	Sock  *sockState `json:",omitempty"`
}

// sockState is a socketpair end: pair number, side (0 or 1), unread bytes, whether the peer end
// is closed.
type sockState struct {
	Pair, Side int
	In         []byte `json:",omitempty"`
	PeerClosed bool   `json:",omitempty"`
}

// treeSpec is a FileTree's description in a snapshot.
type treeSpec struct {
	Host     []string          `json:",omitempty"`
	Files    map[string][]byte `json:",omitempty"`
	TmpLimit int64             `json:",omitempty"`
}

func (s *treeSpec) tree() *FileTree {
	return &FileTree{Host: s.Host, Files: s.Files, TmpLimit: s.TmpLimit}
}

// fileTree is the tree the snapshot's guest had (nil for none), built once and shared by the
// restores whose Config names no tree. The snapshot's state was validated when it was opened.
func (s *Snapshot) fileTree() *FileTree {
	s.filesOnce.Do(func() {
		if fs := s.state.Kernel.FS; fs != nil && fs.Tree != nil {
			s.files = fs.Tree.tree()
		}
	})
	return s.files
}

// state captures the private state; nil when it is the boot state (no tree, nothing open, empty
// /tmp).
func (f *guestFS) state() *fsState {
	if f.tree == nil && (f.cwd == "/" || f.cwd == "") && len(f.tmp) == 0 && len(f.open) == 0 {
		return nil
	}
	s := &fsState{Cwd: f.cwd}
	if t := f.tree; t != nil {
		s.Tree = &treeSpec{Host: t.Host, Files: t.Files, TmpLimit: t.TmpLimit}
	}
	for p, t := range f.tmp {
		s.Tmp = append(s.Tmp, tmpState{Path: p, Dir: t.dir, Data: append([]byte(nil), t.data...), Mtime: t.mtime, Ino: t.ino})
	}
	sort.Slice(s.Tmp, func(i, j int) bool { return s.Tmp[i].Path < s.Tmp[j].Path })
	idx := map[*openFile]int{}
	ends, pairs := map[*sockEnd][2]int{}, 0
	fds := make([]uint64, 0, len(f.open))
	for fd := range f.open {
		fds = append(fds, fd)
	}
	sort.Slice(fds, func(i, j int) bool { return fds[i] < fds[j] })
	for _, fd := range fds {
		of := f.open[fd]
		if i, ok := idx[of]; ok {
			s.Open[i].FDs = append(s.Open[i].FDs, fd)
			continue
		}
		idx[of] = len(s.Open)
		o := openState{FDs: []uint64{fd}, Path: of.path, Kind: of.kind, Flags: of.flags, Off: of.off, Dir: of.dir}
		if e := of.sock; e != nil {
			id, ok := ends[e]
			if !ok {
				if pid, ok := ends[e.peer]; ok {
					id = [2]int{pid[0], 1 - pid[1]}
				} else {
					id = [2]int{pairs, 0}
					pairs++
				}
				ends[e] = id
			}
			o.Sock = &sockState{Pair: id[0], Side: id[1], In: append([]byte(nil), e.in...), PeerClosed: e.peer.closed}
		}
		s.Open = append(s.Open, o)
	}
	return s
}

// setState puts the private state back to s (nil: the boot state); s is not retained.
func (f *guestFS) setState(s *fsState) {
	tree, next := f.tree, uint64(1)
	f.init(tree)
	if s == nil {
		return
	}
	if s.Cwd != "" {
		f.cwd = s.Cwd
	}
	for _, t := range s.Tmp {
		if f.tmp == nil {
			f.tmp = map[string]*tmpNode{}
		}
		f.tmp[t.Path] = &tmpNode{dir: t.Dir, data: append([]byte(nil), t.Data...), mtime: t.Mtime, ino: t.Ino}
		f.tmpBytes += int64(len(t.Data))
		next = max(next, t.Ino)
	}
	f.nextIno = next
	pairs := map[int]*[2]*sockEnd{}
	used := map[*sockEnd]bool{}
	for _, o := range s.Open {
		of := &openFile{path: o.Path, kind: o.Kind, flags: o.Flags, off: o.Off, dir: o.Dir}
		if o.Kind == nodeTmp {
			of.tmp = f.tmp[o.Path]
		}
		if o.Sock != nil {
			p := pairs[o.Sock.Pair]
			if p == nil {
				x, y := &sockEnd{}, &sockEnd{}
				x.peer, y.peer = y, x
				p = &[2]*sockEnd{x, y}
				pairs[o.Sock.Pair] = p
			}
			e := p[o.Sock.Side&1]
			e.in = append([]byte(nil), o.Sock.In...)
			e.peer.closed = e.peer.closed || o.Sock.PeerClosed
			of.sock, used[e] = e, true
		}
		if f.open == nil {
			f.open = map[uint64]*openFile{}
		}
		for _, fd := range o.FDs {
			f.open[fd] = of
		}
	}
	for _, p := range pairs {
		for _, e := range p {
			if !used[e] {
				e.closed = true
			}
		}
	}
}

// validate checks a snapshot's file-system state against its descriptor table.
func (s *fsState) validate(fds fdTable) error {
	if s == nil {
		for fd, kind := range fds.Files {
			if kind == kindFile {
				return fmt.Errorf("%w: descriptor %d is a file the state does not describe", ErrBadSnapshot, fd)
			}
		}
		return nil
	}
	if s.Tree != nil {
		if err := s.Tree.tree().check(); err != nil {
			return fmt.Errorf("%w: file tree: %v", ErrBadSnapshot, err)
		}
	}
	clean := func(p string) bool { return path.IsAbs(p) && path.Clean(p) == p && len(p) <= maxPath }
	if s.Cwd != "" && !clean(s.Cwd) {
		return fmt.Errorf("%w: current directory %q", ErrBadSnapshot, s.Cwd)
	}
	if len(s.Tmp) > maxTmpEntries {
		return fmt.Errorf("%w: %d /tmp entries", ErrBadSnapshot, len(s.Tmp))
	}
	for _, t := range s.Tmp {
		if !clean(t.Path) || !strings.HasPrefix(t.Path, "/tmp/") {
			return fmt.Errorf("%w: /tmp entry %q", ErrBadSnapshot, t.Path)
		}
	}
	seen := map[uint64]bool{}
	for _, o := range s.Open {
		if o.Sock != nil && (o.Kind != nodeSock || o.Sock.Pair < 0 || o.Sock.Pair >= maxFDs || o.Sock.Side&^1 != 0 || len(o.Sock.In) > sockBufMax) {
			return fmt.Errorf("%w: socket end %+v", ErrBadSnapshot, o.Sock)
		}
		if o.Kind == nodeSock && o.Sock == nil {
			return fmt.Errorf("%w: socket without its state", ErrBadSnapshot)
		}
		if (!clean(o.Path) && o.Kind != nodeSock) || o.Kind < nodeVirtDir || o.Kind > nodeSock || o.Off < 0 {
			return fmt.Errorf("%w: open file %q (kind %d, offset %d)", ErrBadSnapshot, o.Path, o.Kind, o.Off)
		}
		for _, fd := range o.FDs {
			if fd >= uint64(len(fds.Files)) || fds.Files[fd] != kindFile || seen[fd] {
				return fmt.Errorf("%w: open file %q on descriptor %d", ErrBadSnapshot, o.Path, fd)
			}
			seen[fd] = true
		}
	}
	for fd, kind := range fds.Files {
		if kind == kindFile && !seen[uint64(fd)] {
			return fmt.Errorf("%w: descriptor %d is a file the state does not describe", ErrBadSnapshot, fd)
		}
	}
	return nil
}
