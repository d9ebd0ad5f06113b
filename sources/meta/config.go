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
	errs = append(errs, sources.CheckSecrets("app_secret", c.AppSecret, "app_secrets", c.AppSecrets, nil)...)
	return errors.Join(errs...)
}

// NewSource implements sources.Config.
func (c *Config) NewSource() (sources.Source, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Source{verifyToken: c.VerifyToken, keys: sources.SecretKeys(c.AppSecret, c.AppSecrets)}, nil
}
