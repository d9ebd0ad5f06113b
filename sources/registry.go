package sources

import (
	"fmt"
	"sort"
	"sync"

	"github.com/hookbridge/hookbridge/config"
)

// Config is a provider's own configuration: the YAML keys of a source besides
// the common ones (type, path, allow_ips, body_limit). Fields carry yaml tags
// and a comment with their default.
type Config interface {
	config.Validator
	// NewSource builds the source. It does no network I/O.
	NewSource() (Source, error)
}

// Registration describes one provider type.
type Registration struct {
	Type      string        // the `type:` value, e.g. "helloclient"
	NewConfig func() Config // a new config with defaults filled in
	Example   string        // a YAML example of the source's own keys
}

var (
	mu       sync.RWMutex
	registry = map[string]Registration{}
)

// Register adds a provider type; it is called from the provider's init().
// Registering a type twice panics.
func Register(r Registration) {
	mu.Lock()
	defer mu.Unlock()
	if r.Type == "" || r.NewConfig == nil {
		panic("sources: Register needs a Type and NewConfig")
	}
	if _, dup := registry[r.Type]; dup {
		panic(fmt.Sprintf("sources: type %q registered twice", r.Type))
	}
	registry[r.Type] = r
}

// Lookup returns the registration of a type.
func Lookup(typ string) (Registration, bool) {
	mu.RLock()
	defer mu.RUnlock()
	r, ok := registry[typ]
	return r, ok
}

// Types lists the registered types, sorted.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// IPGuarded is implemented by configs that authenticate nothing themselves
// in some settings (an unsigned Socialboards endpoint without a key): the
// loader then requires the source's allow_ips.
type IPGuarded interface {
	NeedsAllowIPs() bool
}
