package socialboards

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
		Type:      "socialboards",
		NewConfig: func() sources.Config { return &Config{} },
		Example:   example,
	})
}

// Config is the socialboards source's own keys.
type Config struct {
	// VerifyToken is the Verify Token typed into Socialboards' webhook
	// settings; the GET handshake must carry it. Required.
	VerifyToken string `yaml:"verify_token"`
	// Key is a secret every POST must carry as the `key` query parameter
	// (write it into the endpoint URL given to Socialboards). Required
	// unless AllowUnsigned is set.
	Key string `yaml:"key"`
	// AllowUnsigned accepts POSTs that carry no key. Socialboards does not
	// sign its requests, so set it only together with allow_ips. Default false.
	AllowUnsigned bool `yaml:"allow_unsigned"`
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs []error
	errs = append(errs, config.Required("verify_token", c.VerifyToken))
	switch {
	case c.Key == "" && !c.AllowUnsigned:
		errs = append(errs, config.Invalid("key", "is required: Socialboards does not sign its POSTs, so without a key anyone may post events (set allow_unsigned: true together with allow_ips to rely on the IP allow-list alone)"))
	case c.Key != "" && c.AllowUnsigned:
		errs = append(errs, config.Invalid("allow_unsigned", "contradicts key: with a key set every POST must carry it"))
	}
	return errors.Join(errs...)
}

// NeedsAllowIPs reports whether the source accepts POSTs without any secret
// (allow_unsigned: true), so that it is safe only behind the common
// allow_ips; a loader that sees the common keys can refuse it without one.
func (c *Config) NeedsAllowIPs() bool { return c.Key == "" }

// NewSource implements sources.Config.
func (c *Config) NewSource() (sources.Source, error) {
	return &Source{verifyToken: c.VerifyToken, key: c.Key}, nil
}
