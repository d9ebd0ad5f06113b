package meta

import (
	_ "embed"
	"errors"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sources"
)

//go:embed example.yaml
var example string

// Type is the source type.
const Type = "meta"

func init() {
	sources.Register(sources.Registration{
		Type:      Type,
		NewConfig: func() sources.Config { return NewConfig() },
		Example:   example,
	})
}

// Config is the meta source's own keys.
type Config struct {
	// VerifyToken is the Verify Token typed into the app's Webhooks settings
	// in the App Dashboard; the GET verification request must carry it as
	// hub.verify_token. Required.
	VerifyToken string `yaml:"verify_token"`
	// AppSecret is the app's App Secret (App settings > Basic), which signs
	// every POST. Required unless AppSecrets is given.
	AppSecret string `yaml:"app_secret"`
	// AppSecrets are several app secrets, while the app's is reset or when
	// several apps post to one endpoint: a signature by any of them is
	// accepted. Default none.
	AppSecrets []string `yaml:"app_secrets"`
}

// NewConfig returns a Config with its defaults filled in.
func NewConfig() *Config { return &Config{} }

// Validate implements config.Validator.
func (c *Config) Validate() error {
	errs := []error{config.Required("verify_token", c.VerifyToken)}
	switch {
	case c.AppSecret == "" && len(c.AppSecrets) == 0:
		errs = append(errs, config.Invalid("app_secret", "is required unless app_secrets is given"))
	case c.AppSecret != "" && len(c.AppSecrets) > 0:
		errs = append(errs, config.Invalid("app_secrets", "and app_secret exclude each other: list every secret under app_secrets"))
	}
	for i, s := range c.AppSecrets {
		if s == "" {
			errs = append(errs, config.Invalid("app_secrets", "entry %d is empty", i+1))
		}
	}
	return errors.Join(errs...)
}

// NewSource implements sources.Config.
func (c *Config) NewSource() (sources.Source, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	all := c.AppSecrets
	if c.AppSecret != "" {
		all = []string{c.AppSecret}
	}
	keys := make([][]byte, len(all))
	for i, s := range all {
		keys[i] = []byte(s)
	}
	return &Source{verifyToken: c.VerifyToken, keys: keys}, nil
}
