package helpcrunch

import (
	_ "embed"
	"errors"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sources"
)

//go:embed example.yaml
var example string

func init() {
	sources.Register(sources.Registration{
		Type:      "helpcrunch",
		NewConfig: func() sources.Config { return &Config{} },
		Example:   example,
	})
}

// Config is the helpcrunch source's own keys.
type Config struct {
	// Secret is the HTTP Webhook Signing Key shown in HelpCrunch >
	// Settings > Developers > Webhooks. Required.
	Secret string `yaml:"secret"`
	// Account is the HelpCrunch account's URI, e.g.
	// https://acme.helpcrunch.com; it is the CloudEvent source. Required.
	Account string `yaml:"account"`
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	return errors.Join(
		config.Required("secret", c.Secret),
		sources.CheckAbsoluteURI("account", c.Account, "https://acme.helpcrunch.com"),
	)
}

// NewSource implements sources.Config.
func (c *Config) NewSource() (sources.Source, error) {
	return &Source{secret: []byte(c.Secret), account: c.Account}, nil
}
