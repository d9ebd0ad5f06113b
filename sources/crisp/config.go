package crisp

import (
	_ "embed"
	"errors"
	"time"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sources"
)

//go:embed example.yaml
var example string

func init() {
	sources.Register(sources.Registration{
		Type:      "crisp",
		NewConfig: func() sources.Config { return &Config{Tolerance: 5 * time.Minute} },
		Example:   example,
	})
}

// Config is the crisp source's own keys. At least one of Key and Secret is
// required; with both, a request passes when either checks out.
type Config struct {
	// Key is the secret Website Hooks carry as the `key` query parameter of
	// the endpoint URL given to Crisp. Default none.
	Key string `yaml:"key"`
	// Secret is the Plugin Hooks signing secret from the Crisp Marketplace,
	// which keys X-Crisp-Signature. Default none.
	Secret string `yaml:"secret"`
	// Tolerance is how far X-Crisp-Request-Timestamp may be from the
	// receive time. Default 5m; 0 turns the check off.
	Tolerance time.Duration `yaml:"tolerance"`
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs []error
	if c.Key == "" && c.Secret == "" {
		errs = append(errs, config.Invalid("key", "is required unless secret is set: set key for Website Hooks (?key=...), secret for Plugin Hooks (X-Crisp-Signature), or both"))
	}
	errs = append(errs, sources.CheckNotBlank("key", c.Key), sources.CheckNotBlank("secret", c.Secret))
	if c.Tolerance < 0 {
		errs = append(errs, config.Invalid("tolerance", "must not be negative"))
	}
	return errors.Join(errs...)
}

// NewSource implements sources.Config.
func (c *Config) NewSource() (sources.Source, error) {
	return &Source{key: c.Key, secret: []byte(c.Secret), tolerance: c.Tolerance}, nil
}
