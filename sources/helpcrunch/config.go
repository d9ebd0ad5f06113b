package helpcrunch

import (
	_ "embed"
	"errors"
	"net/url"

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
	errs := []error{config.Required("secret", c.Secret)}
	if err := config.Required("account", c.Account); err != nil {
		errs = append(errs, err)
	} else if !absoluteURI(c.Account) {
		errs = append(errs, config.Invalid("account", "must be an absolute URI such as https://acme.helpcrunch.com, got %q", c.Account))
	}
	return errors.Join(errs...)
}

// NewSource implements sources.Config.
func (c *Config) NewSource() (sources.Source, error) {
	return &Source{secret: []byte(c.Secret), account: c.Account}, nil
}

// absoluteURI reports whether s parses as a URI with a scheme and a host.
func absoluteURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != ""
}
