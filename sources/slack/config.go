package slack

import (
	_ "embed"
	"errors"
	"time"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sources"
)

//go:embed example.yaml
var example string

// Type is the source type.
const Type = "slack"

// DefaultTolerance is how far X-Slack-Request-Timestamp may be from the
// receive time unless tolerance says otherwise: the five minutes Slack's
// guide to verifying requests suggests.
const DefaultTolerance = 5 * time.Minute

func init() {
	sources.Register(sources.Registration{
		Type:      Type,
		NewConfig: func() sources.Config { return NewConfig() },
		Example:   example,
	})
}

// Config is the slack source's own keys.
type Config struct {
	// Secret is the app's signing secret (Basic Information > App
	// Credentials). Required unless Secrets is given.
	Secret string `yaml:"secret"`
	// Secrets are several signing secrets, while the app's is regenerated:
	// a signature by any of them is accepted. Default none.
	Secrets []string `yaml:"secrets"`
	// Tolerance is how far X-Slack-Request-Timestamp may be from the
	// receive time. Default 5m; 0 turns the check off.
	Tolerance time.Duration `yaml:"tolerance"`
}

// NewConfig returns a Config with its defaults filled in.
func NewConfig() *Config { return &Config{Tolerance: DefaultTolerance} }

// Validate implements config.Validator.
func (c *Config) Validate() error {
	errs := sources.CheckSecrets("secret", c.Secret, "secrets", c.Secrets, nil)
	if c.Tolerance < 0 {
		errs = append(errs, config.Invalid("tolerance", "must not be negative (0 turns the check off)"))
	}
	return errors.Join(errs...)
}

// NewSource implements sources.Config.
func (c *Config) NewSource() (sources.Source, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Source{keys: sources.SecretKeys(c.Secret, c.Secrets), tolerance: c.Tolerance}, nil
}
