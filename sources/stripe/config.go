package stripe

import (
	_ "embed"
	"errors"
	"strings"
	"time"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sources"
)

//go:embed example.yaml
var example string

// Type is the source type.
const Type = "stripe"

// DefaultTolerance is how far Stripe's signed timestamp may be from the
// receive time unless tolerance says otherwise; Stripe's libraries use the
// same five minutes.
const DefaultTolerance = 5 * time.Minute

// secretPrefix starts every signing secret Stripe shows for an endpoint.
const secretPrefix = "whsec_"

func init() {
	sources.Register(sources.Registration{
		Type:      Type,
		NewConfig: func() sources.Config { return NewConfig() },
		Example:   example,
	})
}

// Config is the stripe source's own keys.
type Config struct {
	// Secret is the endpoint's signing secret (whsec_...). Required unless
	// Secrets is given.
	Secret string `yaml:"secret"`
	// Secrets are several signing secrets, while the endpoint's secret is
	// rolled: a v1 signature by any of them is accepted. Default none.
	Secrets []string `yaml:"secrets"`
	// Tolerance is how far the signed timestamp t may be from the receive
	// time, either way. Default 5m; 0 turns the check off.
	Tolerance time.Duration `yaml:"tolerance"`
	// Account is the id (acct_...) of the Stripe account whose endpoint this
	// is: events of that account get the source
	// https://dashboard.stripe.com/<account>. Default none: the source is
	// https://dashboard.stripe.com. A Connect event's own account always wins.
	Account string `yaml:"account"`
}

// NewConfig returns a Config with its defaults filled in.
func NewConfig() *Config { return &Config{Tolerance: DefaultTolerance} }

// Validate implements config.Validator. Its errors never quote a secret.
func (c *Config) Validate() error {
	errs := sources.CheckSecrets("secret", c.Secret, "secrets", c.Secrets, checkSecret)
	if c.Tolerance < 0 {
		errs = append(errs, config.Invalid("tolerance", "must not be negative (0 turns the check off)"))
	}
	if c.Account != "" && !isAccountID(c.Account) {
		errs = append(errs, config.Invalid("account", "must be a Stripe account id such as acct_1032D82eZvKYlo2C, got %q", c.Account))
	}
	return errors.Join(errs...)
}

// checkSecret says why s cannot be an endpoint's signing secret (an API
// key pasted in its place, say), without quoting it.
func checkSecret(s string) error {
	if strings.HasPrefix(s, secretPrefix) && len(s) > len(secretPrefix) {
		return nil
	}
	what := "the value given does not"
	for _, p := range []string{"sk_", "rk_", "pk_"} {
		if strings.HasPrefix(s, p) {
			what = "this is an API key (" + p + "...), not the endpoint's signing secret"
		}
	}
	return errors.New("must be the endpoint's signing secret, which starts with " + secretPrefix + "; " + what)
}

// isAccountID reports whether s is shaped as a Stripe account id:
// acct_ and letters or digits.
func isAccountID(s string) bool {
	rest, ok := strings.CutPrefix(s, "acct_")
	if !ok || rest == "" {
		return false
	}
	for _, r := range rest {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// NewSource implements sources.Config.
func (c *Config) NewSource() (sources.Source, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	// Stripe keys the HMAC with the secret string as shown, whsec_ and all.
	src := &Source{keys: sources.SecretKeys(c.Secret, c.Secrets), tolerance: c.Tolerance, source: dashboard}
	if c.Account != "" {
		src.source = dashboard + "/" + c.Account
	}
	return src, nil
}
