package github

import (
	_ "embed"
	"errors"

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
	return errors.Join(sources.CheckSecrets("secret", c.Secret, "secrets", c.Secrets, nil)...)
}

// NewSource implements sources.Config.
func (c *Config) NewSource() (sources.Source, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Source{keys: sources.SecretKeys(c.Secret, c.Secrets)}, nil
}
