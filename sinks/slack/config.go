package slack

import (
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
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
	return &Config{APIURL: DefaultAPIURL, EscapeData: true, Timeout: 10 * time.Second, ThreadTTL: DefaultThreadTTL}
}

// DefaultThreadTTL is how long a thread is remembered after its last
// message unless thread_ttl says otherwise: a chat or an email exchange
// that goes quiet for longer starts a new thread.
const DefaultThreadTTL = 72 * time.Hour

// DefaultThreadStoreDir is the directory under which each slack sink with
// a thread_key keeps its threads, in a subdirectory named after the sink,
// unless thread_store says otherwise.
const DefaultThreadStoreDir = "./data/slack-threads"

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
	// ThreadKey groups messages into Slack threads; a template, e.g.
	// "{{ .Subject }}". The first event with a key (in a channel) posts to
	// the channel; later ones reply in that message's thread. An event
	// whose key renders empty is posted on its own. Needs token and
	// channel: an incoming webhook does not answer with the message's ts.
	// Default none (no threads).
	ThreadKey *tmpl.Template `yaml:"thread_key"`
	// ReplyBroadcast also shows each reply in the channel, as "Also send
	// to #channel" does. Default false.
	ReplyBroadcast bool `yaml:"reply_broadcast"`
	// ThreadTTL is how long a thread is remembered after its last message;
	// an event with its key after that starts a new thread. Default 72h.
	ThreadTTL time.Duration `yaml:"thread_ttl"`
	// ThreadStore is the directory of the store that maps thread keys to
	// threads; it survives restarts and must not be shared with another
	// sink or bridge process. With queue type kafka the map is in the
	// replicas' shared state instead, and this is not used. Default
	// ./data/slack-threads/<sink name>.
	ThreadStore string `yaml:"thread_store"`
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
	if err := checkBlocksShape(c.Blocks); err != nil {
		errs = append(errs, config.Invalid("blocks", "%v", err))
	}
	if c.Timeout <= 0 {
		errs = append(errs, config.Invalid("timeout", "must be positive"))
	}
	switch {
	case !c.ThreadKey.IsZero() && hasWebhook:
		errs = append(errs, config.Invalid("thread_key", "needs token and channel: replies are threaded under the ts of their thread's first message, which chat.postMessage answers with and an incoming webhook does not"))
	case c.ThreadKey.IsZero():
		if c.ReplyBroadcast {
			errs = append(errs, config.Invalid("reply_broadcast", "applies only with thread_key"))
		}
		if c.ThreadStore != "" {
			errs = append(errs, config.Invalid("thread_store", "applies only with thread_key"))
		}
	}
	if c.ThreadTTL <= 0 {
		errs = append(errs, config.Invalid("thread_ttl", "must be positive"))
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

// threadStorePath is where the sink named name keeps its threads.
func (c *Config) threadStorePath(name string) string {
	if p := strings.TrimSpace(c.ThreadStore); p != "" {
		return p
	}
	return filepath.Join(DefaultThreadStoreDir, url.PathEscape(name))
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

// checkBlocksShape refuses, at load, blocks that could never render to a
// list of blocks, rather than every event's delivery.
func checkBlocksShape(b *tmpl.JSON) error {
	if b.IsZero() || b.IsList() || b.IsRawJSON() {
		return nil
	}
	if b.IsMapping() {
		inner, ok := b.Field("blocks")
		if !ok {
			return fmt.Errorf("a mapping must hold a blocks list, as Block Kit Builder exports it")
		}
		if !inner.IsList() && !inner.IsRawJSON() {
			return fmt.Errorf("the mapping's blocks must be a list of blocks")
		}
		return nil
	}
	return fmt.Errorf("must be a list of blocks, a mapping with a blocks list, or one template ending in toJson")
}
