package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/gpunode/gpunode/protocol"
	"github.com/ipfs/go-cid"
)

// Sentinel errors of import and export.
var (
	ErrUnsupportedFile = errors.New("storage: unsupported file type (only regular files and directories)")
	ErrExists          = errors.New("storage: export target exists")
	ErrSizeMismatch    = errors.New("storage: content size does not match manifest")
)

// DefaultChunkSize is the chunk size Import uses unless told otherwise.
const DefaultChunkSize = 1 << 20

// ImportOptions configures Import and ImportReader. The zero value is the
// default.
type ImportOptions struct {
	ChunkSize int         // bytes per raw block; default DefaultChunkSize, at most MaxBlockSize
	Fanout    int         // links per manifest node; default DefaultFanout, 2..MaxLinks
	Mode      fs.FileMode // ImportReader only: permission bits to record; default 0o644
	NoPin     bool        // do not pin the root (it is then removed by the next GC)
	// Progress, if set, is called after each chunk with the content bytes
	// imported so far.
	Progress func(bytes int64)
}

func (o *ImportOptions) setDefaults() error {
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.Fanout == 0 {
		o.Fanout = DefaultFanout
	}
	if o.ChunkSize < 1 || o.ChunkSize > MaxBlockSize {
		return fmt.Errorf("storage: import: chunk size %d not in [1, %d]", o.ChunkSize, MaxBlockSize)
	}
	if o.Fanout < 2 || o.Fanout > MaxLinks {
		return fmt.Errorf("storage: import: fanout %d not in [2, %d]", o.Fanout, MaxLinks)
	}
	if o.Mode&^fs.ModePerm != 0 {
		return fmt.Errorf("storage: import: mode %v has bits beyond the permissions", o.Mode)
	}
	if o.Mode == 0 {
		o.Mode = 0o644
	}
	return nil
}

// importer carries one import's state.
type importer struct {
	b    *Blockstore
	opts ImportOptions
	buf  []byte // one chunk, reused
	done int64  // content bytes so far
}

// Import adds the file or directory tree at path and returns the root CID
// of its manifest. Only regular files and directories are accepted. Memory
// use is one chunk plus one manifest node per tree level, whatever the size.
// The root is pinned unless opts.NoPin.
func Import(ctx context.Context, b *Blockstore, path string, opts ImportOptions) (cid.Cid, error) {
	if err := opts.setDefaults(); err != nil {
		return cid.Undef, err
	}
	release := b.HoldGC()
	defer release()
	im := &importer{b: b, opts: opts, buf: make([]byte, opts.ChunkSize)}
	fi, err := os.Stat(path)
	if err != nil {
		return cid.Undef, fmt.Errorf("storage: import: %w", err)
	}
	name := filepath.Base(filepath.Clean(path))
	if validName(name) != nil {
		name = "" // e.g. "/" has no usable name
	}
	var root Link
	switch {
	case fi.IsDir():
		root, err = im.dir(ctx, path, name, fi.Mode())
	case fi.Mode().IsRegular():
		root, err = im.file(ctx, path, name, fi.Mode())
	default:
		err = fmt.Errorf("%w: %s", ErrUnsupportedFile, path)
	}
	if err != nil {
		return cid.Undef, err
	}
	return root.CID.Cid, im.finish(ctx, root.CID.Cid)
}

// ImportReader adds the content of r as one file called name (may be empty)
// with permission bits opts.Mode and returns its root CID. It reads r once,
// a chunk at a time.
func ImportReader(ctx context.Context, b *Blockstore, name string, r io.Reader, opts ImportOptions) (cid.Cid, error) {
	if err := opts.setDefaults(); err != nil {
		return cid.Undef, err
	}
	if name != "" {
		if err := validName(name); err != nil {
			return cid.Undef, fmt.Errorf("storage: import: %w", err)
		}
	}
	release := b.HoldGC()
	defer release()
	im := &importer{b: b, opts: opts, buf: make([]byte, opts.ChunkSize)}
	root, err := im.stream(ctx, r, name, opts.Mode)
	if err != nil {
		return cid.Undef, err
	}
	return root.CID.Cid, im.finish(ctx, root.CID.Cid)
}

func (im *importer) finish(ctx context.Context, root cid.Cid) error {
	if err := im.b.Sync(); err != nil {
		return err
	}
	if im.opts.NoPin {
		return nil
	}
	return im.b.Pin(ctx, root)
}

func (im *importer) dir(ctx context.Context, dirPath, name string, mode fs.FileMode) (Link, error) {
	ents, err := os.ReadDir(dirPath) // sorted by name, as a dir node requires
	if err != nil {
		return Link{}, fmt.Errorf("storage: import: %w", err)
	}
	if len(ents) > MaxLinks {
		return Link{}, fmt.Errorf("storage: import %s: %d entries > %d per directory", dirPath, len(ents), MaxLinks)
	}
	node := &Node{Type: NodeDir, Name: name, Mode: uint32(mode.Perm()), Links: make([]Link, 0, len(ents))}
	for _, e := range ents {
		if err := validName(e.Name()); err != nil {
			return Link{}, fmt.Errorf("storage: import %s: %w", dirPath, err)
		}
		p := filepath.Join(dirPath, e.Name())
		fi, err := e.Info()
		if err != nil {
			return Link{}, fmt.Errorf("storage: import: %w", err)
		}
		var l Link
		switch {
		case fi.IsDir():
			l, err = im.dir(ctx, p, "", fi.Mode())
		case fi.Mode().IsRegular():
			l, err = im.file(ctx, p, "", fi.Mode())
		default:
			err = fmt.Errorf("%w: %s", ErrUnsupportedFile, p)
		}
		if err != nil {
			return Link{}, err
		}
		l.Name = e.Name()
		node.Links = append(node.Links, l)
		node.Size += l.Size
	}
	return im.putNode(ctx, node)
}

func (im *importer) file(ctx context.Context, p, name string, mode fs.FileMode) (Link, error) {
	f, err := os.Open(p)
	if err != nil {
		return Link{}, fmt.Errorf("storage: import: %w", err)
	}
	defer f.Close()
	return im.stream(ctx, f, name, mode)
}

// stream chunks r into raw blocks and builds the file's manifest tree
// bottom-up: levels[0] collects chunk links; a level that fills up becomes a
// NodeChunks node linked from the level above. Content order is kept because
// a higher level only ever holds content from before the levels below it.
func (im *importer) stream(ctx context.Context, r io.Reader, name string, mode fs.FileMode) (Link, error) {
	levels := [][]Link{nil}
	var add func(level int, l Link) error
	add = func(level int, l Link) error {
		if len(levels[level]) == im.opts.Fanout {
			nl, err := im.putNode(ctx, chunksNode(levels[level]))
			if err != nil {
				return err
			}
			levels[level] = levels[level][:0]
			if level+1 == len(levels) {
				levels = append(levels, nil)
			}
			if err := add(level+1, nl); err != nil {
				return err
			}
		}
		levels[level] = append(levels[level], l)
		return nil
	}
	for {
		n, rerr := io.ReadFull(r, im.buf)
		if n > 0 {
			chunk := im.buf[:n]
			c := protocol.BlockCID(chunk)
			if err := im.b.Put(ctx, c, chunk); err != nil {
				return Link{}, fmt.Errorf("storage: import: %w", err)
			}
			if err := add(0, Link{CID: protocol.NewCID(c), Size: uint64(n)}); err != nil {
				return Link{}, err
			}
			im.done += int64(n)
			if im.opts.Progress != nil {
				im.opts.Progress(im.done)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return Link{}, fmt.Errorf("storage: import: read: %w", rerr)
		}
	}
	for i := 0; i < len(levels)-1; i++ {
		if len(levels[i]) == 0 {
			continue
		}
		nl, err := im.putNode(ctx, chunksNode(levels[i]))
		if err != nil {
			return Link{}, err
		}
		levels[i] = levels[i][:0]
		if err := add(i+1, nl); err != nil {
			return Link{}, err
		}
	}
	top := levels[len(levels)-1]
	node := &Node{Type: NodeFile, Name: name, Mode: uint32(mode.Perm()), Links: top}
	for _, l := range top {
		node.Size += l.Size
	}
	return im.putNode(ctx, node)
}

func chunksNode(links []Link) *Node {
	n := &Node{Type: NodeChunks, Links: links}
	for _, l := range links {
		n.Size += l.Size
	}
	return n
}

func (im *importer) putNode(ctx context.Context, n *Node) (Link, error) {
	data, c, err := EncodeNode(n)
	if err != nil {
		return Link{}, fmt.Errorf("storage: import: %w", err)
	}
	if err := im.b.Put(ctx, c, data); err != nil {
		return Link{}, fmt.Errorf("storage: import: %w", err)
	}
	return Link{CID: protocol.NewCID(c), Size: n.Size}, nil
}

// ExportOptions configures Export. The zero value is the default.
type ExportOptions struct {
	// Overwrite replaces an existing file at the target (never a directory).
	Overwrite bool
	// Progress, if set, is called after each chunk with the content bytes
	// written so far.
	Progress func(bytes int64)
}

// exporter carries one export's state.
type exporter struct {
	b    *Blockstore
	opts ExportOptions
	done int64
}

// Export writes the file or directory under root to outPath, verifying every
// block and every size on the way. A file is written to a temporary file
// beside outPath and renamed into place when complete; a directory must not
// exist yet, and is removed again if the export fails. Names, sizes and
// permission bits are restored. Memory use is one block plus one manifest
// node per tree level. A block missing from b fails the export with
// ErrNotFound, a corrupt one with ErrCorrupt.
func Export(ctx context.Context, b *Blockstore, root cid.Cid, outPath string, opts ExportOptions) error {
	ex := &exporter{b: b, opts: opts}
	n, err := getNode(ctx, b, root)
	if err != nil {
		return err
	}
	switch n.Type {
	case NodeFile:
		return ex.file(ctx, n, outPath)
	case NodeDir:
		err := ex.dir(ctx, n, outPath, 0)
		if err != nil && !errors.Is(err, ErrExists) {
			// The directory did not exist before (Mkdir succeeded), so
			// everything under it is ours to remove.
			removeTree(outPath)
		}
		return err
	default:
		return fmt.Errorf("%w: root is a %s node", ErrBadManifest, n.Type)
	}
}

// removeTree deletes a partly exported tree, first making its directories
// writable again (modes such as 0o555 are applied as each completes).
func removeTree(root string) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(root)
}

// getNode fetches and decodes a manifest node.
func getNode(ctx context.Context, b *Blockstore, c cid.Cid) (*Node, error) {
	if err := CheckCID(c); err != nil || c.Type() != cid.DagCBOR {
		return nil, fmt.Errorf("%w: %s is not a manifest node CID", ErrBadManifest, c)
	}
	data, err := b.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	n, err := DecodeNode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	return n, nil
}

// child fetches the node a link points to and checks the link's size.
func child(ctx context.Context, b *Blockstore, l Link, want string) (*Node, error) {
	n, err := getNode(ctx, b, l.CID.Cid)
	if err != nil {
		return nil, err
	}
	if n.Size != l.Size {
		return nil, fmt.Errorf("%w: %s holds %d bytes, link says %d", ErrSizeMismatch, l.CID, n.Size, l.Size)
	}
	if want != "" && n.Type != want {
		return nil, fmt.Errorf("%w: %s is a %s node, want %s", ErrBadManifest, l.CID, n.Type, want)
	}
	return n, nil
}

func (ex *exporter) dir(ctx context.Context, n *Node, outPath string, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("%w: directories nested deeper than %d", ErrBadManifest, maxTreeDepth)
	}
	// Owner-writable while filling; the recorded mode is applied last.
	if err := os.Mkdir(outPath, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, outPath)
		}
		return fmt.Errorf("storage: export: %w", err)
	}
	for _, l := range n.Links {
		if l.CID.Type() != cid.DagCBOR {
			return fmt.Errorf("%w: entry %q", ErrBadManifest, l.Name)
		}
		c, err := child(ctx, ex.b, l, "")
		if err != nil {
			return err
		}
		p := filepath.Join(outPath, l.Name)
		switch c.Type {
		case NodeDir:
			err = ex.dir(ctx, c, p, depth+1)
		case NodeFile:
			err = ex.file(ctx, c, p)
		default:
			err = fmt.Errorf("%w: entry %q is a %s node", ErrBadManifest, l.Name, c.Type)
		}
		if err != nil {
			return err
		}
	}
	if err := os.Chmod(outPath, fs.FileMode(n.Mode)); err != nil {
		return fmt.Errorf("storage: export: %w", err)
	}
	return nil
}

func (ex *exporter) file(ctx context.Context, n *Node, outPath string) (err error) {
	if !ex.opts.Overwrite {
		if _, err := os.Lstat(outPath); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, outPath)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(outPath), "."+path.Base(filepath.ToSlash(outPath))+".part-*")
	if err != nil {
		return fmt.Errorf("storage: export: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	written, err := ex.content(ctx, f, n.Links, 0)
	if err != nil {
		return err
	}
	if written != n.Size {
		return fmt.Errorf("%w: wrote %d bytes, manifest says %d", ErrSizeMismatch, written, n.Size)
	}
	if err := f.Chmod(fs.FileMode(n.Mode)); err != nil {
		return fmt.Errorf("storage: export: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("storage: export: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("storage: export: %w", err)
	}
	if err := os.Rename(f.Name(), outPath); err != nil {
		return fmt.Errorf("storage: export: %w", err)
	}
	return nil
}

// content writes the content below links, depth-first, and returns how many
// bytes it wrote.
func (ex *exporter) content(ctx context.Context, w io.Writer, links []Link, depth int) (uint64, error) {
	if depth > maxTreeDepth {
		return 0, fmt.Errorf("%w: chunk tree deeper than %d", ErrBadManifest, maxTreeDepth)
	}
	var total uint64
	for _, l := range links {
		if l.CID.Type() == cid.Raw {
			data, err := ex.b.Get(ctx, l.CID.Cid)
			if err != nil {
				return total, err
			}
			if uint64(len(data)) != l.Size {
				return total, fmt.Errorf("%w: chunk %s has %d bytes, link says %d", ErrSizeMismatch, l.CID, len(data), l.Size)
			}
			if _, err := w.Write(data); err != nil {
				return total, fmt.Errorf("storage: export: %w", err)
			}
			total += l.Size
			ex.done += int64(l.Size)
			if ex.opts.Progress != nil {
				ex.opts.Progress(ex.done)
			}
			continue
		}
		c, err := child(ctx, ex.b, l, NodeChunks)
		if err != nil {
			return total, err
		}
		n, err := ex.content(ctx, w, c.Links, depth+1)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// ManifestInfo describes the DAG under a root.
type ManifestInfo struct {
	Root   cid.Cid
	Type   string // NodeFile or NodeDir
	Name   string // the root's recorded name, if any
	Size   uint64 // content bytes of all files
	Blocks int    // blocks referenced: manifest nodes and chunks, counting a shared chunk at each use
	Files  []FileInfo
}

// FileInfo is one file or directory under a root. Path is slash-separated
// and relative to the root ("" for the root itself).
type FileInfo struct {
	Path  string
	Size  uint64
	Mode  fs.FileMode // permission bits, plus fs.ModeDir for directories
	IsDir bool
}

// Stat describes the DAG under root from its manifest nodes alone (chunks
// are counted, not read). The root and every manifest node must be held.
func Stat(ctx context.Context, b *Blockstore, root cid.Cid) (ManifestInfo, error) {
	n, err := getNode(ctx, b, root)
	if err != nil {
		return ManifestInfo{}, err
	}
	info := ManifestInfo{Root: root, Type: n.Type, Name: n.Name, Size: n.Size, Blocks: 1}
	if n.Type != NodeFile && n.Type != NodeDir {
		return ManifestInfo{}, fmt.Errorf("%w: root is a %s node", ErrBadManifest, n.Type)
	}
	err = statNode(ctx, b, n, "", &info, 0)
	return info, err
}

func statNode(ctx context.Context, b *Blockstore, n *Node, p string, info *ManifestInfo, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("%w: deeper than %d", ErrBadManifest, maxTreeDepth)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	switch n.Type {
	case NodeDir:
		info.Files = append(info.Files, FileInfo{Path: p, Size: n.Size, Mode: fs.FileMode(n.Mode) | fs.ModeDir, IsDir: true})
		for _, l := range n.Links {
			c, err := child(ctx, b, l, "")
			if err != nil {
				return err
			}
			if c.Type == NodeChunks {
				return fmt.Errorf("%w: entry %q is a chunks node", ErrBadManifest, l.Name)
			}
			info.Blocks++
			if err := statNode(ctx, b, c, path.Join(p, l.Name), info, depth+1); err != nil {
				return err
			}
		}
	case NodeFile:
		info.Files = append(info.Files, FileInfo{Path: p, Size: n.Size, Mode: fs.FileMode(n.Mode)})
		return countChunks(ctx, b, n.Links, info, depth)
	}
	return nil
}

func countChunks(ctx context.Context, b *Blockstore, links []Link, info *ManifestInfo, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("%w: chunk tree deeper than %d", ErrBadManifest, maxTreeDepth)
	}
	for _, l := range links {
		info.Blocks++
		if l.CID.Type() == cid.Raw {
			continue
		}
		c, err := child(ctx, b, l, NodeChunks)
		if err != nil {
			return err
		}
		if err := countChunks(ctx, b, c.Links, info, depth+1); err != nil {
			return err
		}
	}
	return nil
}
