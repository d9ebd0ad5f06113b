package helloclient

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
		Type:      "helloclient",
		NewConfig: func() sources.Config { return &Config{Tolerance: 5 * time.Minute} },
		Example:   example,
	})
}

// Config is the helloclient source's own keys.
type Config struct {
	// Secret is the webhook signing key shown in Hello Client's Webhook tab.
	// Required.
	Secret string `yaml:"secret"`
	// Tolerance is how far the signed timestamp may be from the receive
	// time. Default 5m; 0 turns the check off.
	Tolerance time.Duration `yaml:"tolerance"`
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs []error
	errs = append(errs, config.Required("secret", c.Secret))
	if c.Tolerance < 0 {
		errs = append(errs, config.Invalid("tolerance", "must not be negative"))
	}
	return errors.Join(errs...)
}

// NewSource implements sources.Config.
func (c *Config) NewSource() (sources.Source, error) {
	return &Source{secret: []byte(c.Secret), tolerance: c.Tolerance}, nil
}
