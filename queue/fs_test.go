package queue

import (
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/vfs"
)

// syncCountingFS counts the syncs of Pebble's write-ahead log files, to
// check that concurrent Enqueues share them.
type syncCountingFS struct {
	vfs.FS
	walSyncs atomic.Int64
}

func newSyncCountingFS() *syncCountingFS { return &syncCountingFS{FS: vfs.Default} }

func (fs *syncCountingFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &syncCountingFile{File: f, fs: fs}, nil
}

func (fs *syncCountingFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	return fs.wrap(name, f, err)
}

func (fs *syncCountingFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	return fs.wrap(newname, f, err)
}

type syncCountingFile struct {
	vfs.File
	fs *syncCountingFS
}

func (f *syncCountingFile) Sync() error {
	f.fs.walSyncs.Add(1)
	return f.File.Sync()
}

func (f *syncCountingFile) SyncData() error {
	f.fs.walSyncs.Add(1)
	return f.File.SyncData()
}
