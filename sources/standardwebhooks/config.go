package standardwebhooks

import (
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sources"
)

//go:embed example.yaml
var example string

func init() {
	sources.Register(sources.Registration{
		Type:      "standardwebhooks",
		NewConfig: func() sources.Config { return NewConfig() },
		Example:   example,
	})
}

// Defaults of the optional keys.
const (
	DefaultTolerance = 5 * time.Minute
	DefaultTypePath  = "type"
	DefaultTimePath  = "timestamp"
)

// SecretPrefix marks a Standard Webhooks symmetric secret.
const SecretPrefix = "whsec_"

// Config is the standardwebhooks source's own keys.
type Config struct {
	// Secret is the endpoint's signing secret, whsec_<base64>. Required
	// unless Secrets is given.
	Secret string `yaml:"secret"`
	// Secrets are several signing secrets, for rotation: a signature by any
	// of them is accepted. Default none.
	Secrets []string `yaml:"secrets"`
	// Tolerance is how far webhook-timestamp may be from the receive time.
	// Default 5m; 0 turns the check off.
	Tolerance time.Duration `yaml:"tolerance"`
	// Source is the CloudEvent source URI. Required.
	Source string `yaml:"source"`
	// TypePath is the dotted JSON path of the event type. Default "type".
	TypePath string `yaml:"type_path"`
	// TypePrefix goes before the type, e.g. "com.example.". Default none.
	TypePrefix string `yaml:"type_prefix"`
	// TimePath is the dotted JSON path of the event time. Default
	// "timestamp"; the receive time when it is missing.
	TimePath string `yaml:"time_path"`
	// SubjectPath is the dotted JSON path of the subject. Default none.
	SubjectPath string `yaml:"subject_path"`
	// SubjectPrefix goes before the subject value. Default none.
	SubjectPrefix string `yaml:"subject_prefix"`
}

// NewConfig returns a Config with the defaults filled in.
func NewConfig() *Config {
	return &Config{Tolerance: DefaultTolerance, TypePath: DefaultTypePath, TimePath: DefaultTimePath}
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, sources.CheckSecrets("secret", c.Secret, "secrets", c.Secrets, func(s string) error {
		_, err := DecodeSecret(s)
		return err
	})...)
	if c.Tolerance < 0 {
		add(config.Invalid("tolerance", "must not be negative"))
	}
	add(sources.CheckURIRef("source", c.Source))
	add(config.Required("type_path", c.TypePath))
	for _, p := range []struct{ key, path string }{
		{"type_path", c.TypePath}, {"time_path", c.TimePath}, {"subject_path", c.SubjectPath},
	} {
		add(sources.CheckPath(p.key, p.path))
	}
	if c.SubjectPrefix != "" && c.SubjectPath == "" {
		add(config.Invalid("subject_prefix", "needs subject_path"))
	}
	return errors.Join(errs...)
}

// DecodeSecret returns the key of a whsec_<base64> secret. The prefix may
// be left out, as the specification's reference libraries allow.
func DecodeSecret(secret string) ([]byte, error) {
	s := strings.TrimSpace(secret)
	if strings.HasPrefix(s, "whpk_") || strings.HasPrefix(s, "whsk_") {
		return nil, errors.New("is an asymmetric (v1a, ed25519) key; only whsec_ secrets are supported")
	}
	s = strings.TrimPrefix(s, SecretPrefix)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("the part after %s is not base64: %v", SecretPrefix, err)
	}
	if len(key) == 0 {
		return nil, errors.New("is empty")
	}
	return key, nil
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
		keys[i], _ = DecodeSecret(s)
	}
	return &Source{
		keys:          keys,
		tolerance:     c.Tolerance,
		source:        c.Source,
		typePath:      c.TypePath,
		typePrefix:    c.TypePrefix,
		timePath:      c.TimePath,
		subjectPath:   c.SubjectPath,
		subjectPrefix: c.SubjectPrefix,
	}, nil
}
