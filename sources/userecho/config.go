package userecho

import (
	_ "embed"
	"errors"

	"github.com/hookbridge/hookbridge/sources"
)

//go:embed example.yaml
var example string

func init() {
	sources.Register(sources.Registration{
		Type:      "userecho",
		NewConfig: func() sources.Config { return &Config{} },
		Example:   example,
	})
}

// Config is the userecho source's own keys.
type Config struct {
	// Secret is the webhook key from UserEcho > Setup > Integration >
	// Website > Webhooks. When set, every request must carry a valid
	// X-UE-Signature. Default none: requests are not checked (use
	// allow_ips).
	Secret string `yaml:"secret"`
	// Account is the UserEcho project's URI, e.g. https://acme.userecho.com;
	// it is the CloudEvent source. Required.
	Account string `yaml:"account"`
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	return errors.Join(
		sources.CheckNotBlank("secret", c.Secret),
		sources.CheckAbsoluteURI("account", c.Account, "https://acme.userecho.com"),
	)
}

// NeedsAllowIPs reports whether the source accepts requests without any
// secret, so that it is safe only behind the common allow_ips; a loader that
// sees the common keys can warn about or refuse it without one.
func (c *Config) NeedsAllowIPs() bool { return c.Secret == "" }

// NewSource implements sources.Config.
func (c *Config) NewSource() (sources.Source, error) {
	return &Source{secret: []byte(c.Secret), account: c.Account}, nil
}
