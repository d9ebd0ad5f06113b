package file

import (
	_ "embed"
	"errors"
	"os"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/tmpl"
)

//go:embed example.yaml
var example string

func init() {
	sinks.Register(sinks.Registration{
		Type:      "file",
		NewConfig: func() sinks.Config { return &Config{MaxSize: 100 << 20, Sync: SyncBatch, Perm: 0o644} },
		Example:   example,
	})
}

// Sync policies.
const (
	SyncBatch = "batch" // fsync after every delivered batch (default)
	SyncNone  = "none"  // write, and let the OS flush
)

// Config is the file sink's own keys.
type Config struct {
	// Path of the JSON Lines file; a template over the event. Required.
	Path *tmpl.Template `yaml:"path"`
	// MaxSize rotates a file once it reaches this size. Default 100MiB; 0 never rotates.
	MaxSize config.Size `yaml:"max_size"`
	// Sync is "batch" (default) or "none".
	Sync string `yaml:"sync"`
	// Perm is the mode of new files, in octal as chmod takes it (640 is
	// rw-r-----); it must let the owner write. Default 644.
	Perm config.FileMode `yaml:"perm"`
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs []error
	if c.Path.IsZero() {
		errs = append(errs, config.Invalid("path", "is required"))
	}
	if c.MaxSize < 0 {
		errs = append(errs, config.Invalid("max_size", "must not be negative"))
	}
	if c.Sync != SyncBatch && c.Sync != SyncNone {
		errs = append(errs, config.Invalid("sync", "must be %q or %q, not %q", SyncBatch, SyncNone, c.Sync))
	}
	if c.Perm&0o200 == 0 {
		errs = append(errs, config.Invalid("perm", "%v does not let the owner write: the bridge appends to the file and reopens it after a restart", c.Perm))
	}
	return errors.Join(errs...)
}

// NewSink implements sinks.Config.
func (c *Config) NewSink(name string) (sinks.Sink, error) {
	return &Sink{name: name, path: c.Path, maxSize: int64(c.MaxSize), sync: c.Sync == SyncBatch, perm: os.FileMode(c.Perm), files: map[string]*openFile{}}, nil
}
