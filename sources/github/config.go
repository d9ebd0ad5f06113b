package github

import (
	_ "embed"
	"errors"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sources"
)

//go:embed example.yaml
var example string

// Type is the source type.
const Type = "github"

func init() {
	sources.Register(sources.Registration{
		Type:      Type,
		NewConfig: func() sources.Config { return NewConfig() },
		Example:   example,
	})
}

// Config is the github source's own keys.
type Config struct {
	// Secret is the hook's secret. Required unless Secrets is given.
	Secret string `yaml:"secret"`
	// Secrets are several secrets, while the hook's is rotated: a signature
	// by any of them is accepted. Default none.
	Secrets []string `yaml:"secrets"`
}

// NewConfig returns a Config with its defaults filled in.
func NewConfig() *Config { return &Config{} }

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.Secret == "" && len(c.Secrets) == 0:
		errs = append(errs, config.Invalid("secret", "is required unless secrets is given"))
	case c.Secret != "" && len(c.Secrets) > 0:
		errs = append(errs, config.Invalid("secrets", "and secret exclude each other: list every secret under secrets"))
	}
	for i, s := range c.Secrets {
		if s == "" {
			errs = append(errs, config.Invalid("secrets", "entry %d is empty", i+1))
		}
	}
	return errors.Join(errs...)
}

// NewSource implements sources.Config.
func (c *Config) NewSource() (sources.Source, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	all := c.Secrets
	if c.Secret != "" {
		all = []string{c.Secret}
	}
	keys := make([][]byte, len(all))
	for i, s := range all {
		keys[i] = []byte(s)
	}
	return &Source{keys: keys}, nil
}
