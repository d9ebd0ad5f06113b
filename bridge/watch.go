package bridge

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDebounce lets an editor finish writing (several events for one save)
// before the file is read.
const reloadDebounce = 250 * time.Millisecond

// watchConfig reloads the config whenever its file changes, until ctx ends.
// It watches the directory, because editors and config managers often
// replace the file (write a temporary file, rename it over the old one).
// A file reached through symbolic links is reloaded when the file they
// lead to changes too: a Kubernetes ConfigMap volume updates config.yaml
// (a link to ..data/config.yaml) by renaming a new ..data link into place,
// and the only events are for ..data.
func (a *App) watchConfig(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		a.log.Warn("cannot watch the config file; reload with SIGHUP", "err", err)
		return
	}
	defer w.Close()
	abs, err := filepath.Abs(a.path)
	if err != nil {
		abs = a.path
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		a.log.Warn("cannot watch the config file; reload with SIGHUP", "err", err)
		return
	}
	target := resolve(abs)
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if !ev.Has(fsnotify.Write | fsnotify.Create | fsnotify.Rename) {
				continue
			}
			now := resolve(abs)
			if filepath.Clean(ev.Name) != abs && now == target {
				continue
			}
			target = now
			if timer != nil {
				timer.Stop()
			}
			timer = time.AfterFunc(reloadDebounce, func() {
				select {
				case fire <- struct{}{}:
				default:
				}
			})
		case <-fire:
			a.log.Info("config file changed; reloading", "file", a.path)
			a.Reload(ctx)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			a.log.Warn("config watch error", "err", err)
		}
	}
}

// resolve is the file path leads to through symbolic links, or path itself
// when that cannot be told (the file is being replaced).
func resolve(path string) string {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		return p
	}
	return path
}
