package slack

import (
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/tmpl"
)

//go:embed example.yaml
var example string

// Type is the sink's `type:` value.
const Type = "slack"

// DefaultAPIURL is Slack's Web API base URL.
const DefaultAPIURL = "https://slack.com/api/"

// DefaultRateLimit is a Slack sink's rate_limit unless it sets one: Slack
// accepts about one message a second per incoming webhook or channel, and
// answers a faster burst with 429s, each of which spends one of an
// alert's attempts.
var DefaultRateLimit = config.Rate{PerSecond: 1, Set: true}

func init() {
	sinks.Register(sinks.Registration{
		Type:             Type,
		NewConfig:        func() sinks.Config { return NewConfig() },
		Example:          example,
		DefaultRateLimit: DefaultRateLimit,
	})
}

// NewConfig returns a Config with its defaults filled in.
func NewConfig() *Config {
	return &Config{APIURL: DefaultAPIURL, EscapeData: true, Timeout: 10 * time.Second}
}

// Config is the slack sink's own keys.
type Config struct {
	// WebhookURL is an incoming webhook URL. Either it or Token is
	// required, not both.
	WebhookURL string `yaml:"webhook_url"`
	// Token is a bot token (xoxb-...) with the chat:write scope; messages go
	// through chat.postMessage to Channel.
	Token string `yaml:"token"`
	// Channel is a channel ID or name; a template. Required with token;
	// with webhook_url only legacy webhooks honour it. Default none.
	Channel *tmpl.Template `yaml:"channel"`
	// APIURL is the Web API base URL, for Enterprise Grid proxies and tests.
	// Default https://slack.com/api/.
	APIURL string `yaml:"api_url"`
	// Text is the message text, shown in notifications and where blocks
	// cannot be; a template. Required.
	Text *tmpl.Template `yaml:"text"`
	// Blocks are Block Kit blocks: a list, or a mapping with a blocks list
	// as Block Kit Builder exports it; string leaves are templates. Default
	// none.
	Blocks *tmpl.JSON `yaml:"blocks"`
	// Username overrides the bot's name. Default none.
	Username string `yaml:"username"`
	// IconEmoji overrides the bot's icon, e.g. ":rocket:". Default none.
	IconEmoji string `yaml:"icon_emoji"`
	// EscapeData escapes &, < and > in payload values so Slack shows them as
	// typed. Default true.
	EscapeData bool `yaml:"escape_data"`
	// Timeout bounds one post. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// Validate implements config.Validator; it does no I/O.
func (c *Config) Validate() error {
	var errs []error
	hasWebhook, hasToken := strings.TrimSpace(c.WebhookURL) != "", strings.TrimSpace(c.Token) != ""
	switch {
	case hasWebhook && hasToken:
		errs = append(errs, config.Invalid("token", "give either webhook_url or token, not both"))
	case !hasWebhook && !hasToken:
		errs = append(errs, config.Invalid("webhook_url", "either webhook_url or token (with channel) is required and must not be empty"))
	case hasWebhook:
		if err := checkURL(c.WebhookURL); err != nil {
			errs = append(errs, config.Invalid("webhook_url", "%v", err))
		}
		if c.APIURL != DefaultAPIURL {
			errs = append(errs, config.Invalid("api_url", "applies only with token"))
		}
	case hasToken:
		if c.Channel.IsZero() {
			errs = append(errs, config.Invalid("channel", "is required with token"))
		}
		if err := checkURL(c.APIURL); err != nil {
			errs = append(errs, config.Invalid("api_url", "%v", err))
		}
	}
	if c.Text.IsZero() {
		errs = append(errs, config.Invalid("text", "is required and must not be empty"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, config.Invalid("timeout", "must be positive"))
	}
	return errors.Join(errs...)
}

// NewSink implements sinks.Config; it makes no network connection.
func (c *Config) NewSink(name string) (sinks.Sink, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return newSink(name, c), nil
}

// checkURL accepts an absolute http(s) URL; its text never goes into the
// error, since a webhook URL is a credential.
func checkURL(raw string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil:
		return fmt.Errorf("is not a URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("must start with https://")
	case u.Host == "":
		return fmt.Errorf("has no host")
	}
	return nil
}
