package kafka

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/tmpl"
)

//go:embed example.yaml
var example string

func init() {
	sinks.Register(sinks.Registration{
		Type:      "kafka",
		NewConfig: func() sinks.Config { return NewConfig() },
		Example:   example,
	})
}

// The bridge reads the TLS files when it loads the config.
var _ sinks.FileChecker = (*Config)(nil)

// Defaults of the keys that have one.
const (
	DefaultLinger        = 0
	DefaultBatchMessages = 1000
	DefaultBatchBytes    = config.Size(1 << 20)
	DefaultWriteTimeout  = 10 * time.Second
)

// Config is the kafka sink's own keys.
type Config struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// Topic is the topic each event goes to, a template over the event such
	// as "webhooks.{{ .Extensions.bridgesource }}". Required.
	Topic *tmpl.Template `yaml:"topic"`
	// Key is the message key, a template over the event. Default: the
	// event's subject, else its id. A key that renders empty sends the
	// message without a key.
	Key *tmpl.Template `yaml:"key"`
	// Mode is the CloudEvents content mode: binary (ce_ headers, the data
	// as the value) or structured (the event as JSON). Default binary.
	Mode Mode `yaml:"mode"`
	// Linger is the longest an event waits for its batch to fill before the
	// batch is sent. Default 0: the delivery loop already hands the sink
	// whole batches from the queue, so waiting only adds latency.
	Linger time.Duration `yaml:"linger"`
	// BatchMessages is the most messages sent to one partition in one
	// produce request. Default 1000. (The sink's batch_size, a key every
	// batching sink has, is how many events the delivery loop hands it at
	// once.)
	BatchMessages int `yaml:"batch_messages"`
	// BatchBytes is the most bytes sent to one partition in one request; a
	// single message larger than this is rejected for good. Default 1MiB.
	BatchBytes config.Size `yaml:"batch_bytes"`
	// Compression is the codec of produced batches: none, gzip, snappy, lz4
	// or zstd. Default none.
	Compression string `yaml:"compression"`
	// TLS secures the connections to the brokers. Default off.
	TLS TLSConfig `yaml:"tls"`
	// SASL authenticates to the brokers. Default none.
	SASL SASLConfig `yaml:"sasl"`
	// WriteTimeout bounds the wait for one batch's answer, the client's own
	// retries included, counted from when the delivery loop starts waiting
	// for it (once the batch before it is answered); past it the delivery
	// fails and is retried later. Default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// AllowAutoTopicCreation asks the brokers to create a missing topic (they
	// do if auto.create.topics.enable is on). Default true.
	AllowAutoTopicCreation bool `yaml:"allow_auto_topic_creation"`
}

// TLSConfig is the tls block.
type TLSConfig struct {
	// Enabled turns TLS on. Default false.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the brokers' certificates.
	// Default: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// brokers that want mutual TLS. Default none; give both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify accepts any broker certificate. Default false; for
	// tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// ServerName is the name checked against the brokers' certificates.
	// Default: each broker's host name.
	ServerName string `yaml:"server_name"`
}

// SASLConfig is the sasl block.
type SASLConfig struct {
	// Mechanism is plain, scram-sha-256 or scram-sha-512. Default: no SASL.
	Mechanism string `yaml:"mechanism"`
	// Username and Password are the credentials; required with a
	// mechanism. Write the password as ${VAR} or ${file:PATH}.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// NewConfig returns a Config holding the defaults.
func NewConfig() *Config {
	return &Config{
		Mode:                   ModeBinary,
		Linger:                 DefaultLinger,
		BatchMessages:          DefaultBatchMessages,
		BatchBytes:             DefaultBatchBytes,
		Compression:            "none",
		WriteTimeout:           DefaultWriteTimeout,
		AllowAutoTopicCreation: true,
	}
}

var compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

var saslMechanisms = []string{"plain", "scram-sha-256", "scram-sha-512"}

func oneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// Validate implements config.Validator. It does no I/O: CheckFiles reads
// the TLS files.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, config.Invalid("brokers", "is required: list at least one host:port"))
	}
	for _, b := range c.Brokers {
		if err := CheckBroker(b); err != nil {
			errs = append(errs, config.Invalid("brokers", "%v", err))
		}
	}
	if c.Topic.IsZero() {
		errs = append(errs, config.Required("topic", ""))
	} else if c.Topic.IsConstant() {
		if err := ValidTopic(c.Topic.String()); err != nil {
			errs = append(errs, config.Invalid("topic", "%v", err))
		}
	}
	if c.Mode != ModeBinary && c.Mode != ModeStructured {
		errs = append(errs, config.Invalid("mode", "%q is not binary or structured", c.Mode))
	}
	if c.Linger < 0 {
		errs = append(errs, config.Invalid("linger", "must not be negative"))
	}
	if c.BatchMessages < 1 {
		errs = append(errs, config.Invalid("batch_messages", "must be at least 1"))
	}
	if c.BatchBytes < 1 {
		errs = append(errs, config.Invalid("batch_bytes", "must be more than 0"))
	}
	if !oneOf(c.Compression, compressions) {
		errs = append(errs, config.Invalid("compression", "%q is not one of %s", c.Compression, strings.Join(compressions, ", ")))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, config.Invalid("write_timeout", "must be more than 0"))
	}
	errs = append(errs, c.TLS.Validate(), c.SASL.Validate())
	return errors.Join(errs...)
}

// CheckFiles implements sinks.FileChecker: the bridge reads the TLS files
// when it loads the config, so that a missing one is refused there, at its
// line, rather than found when the sink starts and taken for a broker that
// is down. The sink reads them again when it starts.
func (c *Config) CheckFiles() error { return c.TLS.CheckFiles() }

// CheckFiles reads the files of the tls block, as a client does when it
// starts, and reports what is wrong with them (nothing when TLS is off).
// The Kafka-backed queue's tls block is checked with it too.
func (t TLSConfig) CheckFiles() error {
	if !t.Enabled {
		return nil
	}
	if _, err := t.load(); err != nil {
		return config.Invalid("tls", "%v", err)
	}
	return nil
}

// Validate checks the tls block without reading its files (CheckFiles
// does).
func (t TLSConfig) Validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return config.Invalid("tls", "cert_file and key_file go together")
	}
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.InsecureSkipVerify || t.ServerName != "") {
		return config.Invalid("tls", "has settings but enabled is false; set enabled: true")
	}
	return nil
}

// Validate checks the sasl block.
func (s SASLConfig) Validate() error {
	if s.Mechanism == "" {
		if s.Username != "" || s.Password != "" {
			return config.Invalid("sasl", "username and password need a mechanism (%s)", strings.Join(saslMechanisms, ", "))
		}
		return nil
	}
	if !oneOf(strings.ToLower(s.Mechanism), saslMechanisms) {
		return config.Invalid("sasl", "mechanism %q is not one of %s", s.Mechanism, strings.Join(saslMechanisms, ", "))
	}
	var errs []error
	if strings.TrimSpace(s.Username) == "" {
		errs = append(errs, config.Invalid("sasl", "username is required with mechanism %s", s.Mechanism))
	}
	if s.Password == "" {
		errs = append(errs, config.Invalid("sasl", "password is required with mechanism %s", s.Mechanism))
	}
	return errors.Join(errs...)
}

// NewSink implements sinks.Config. It makes no connection: see Sink.Start.
func (c *Config) NewSink(name string) (sinks.Sink, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("kafka sink %q: %w", name, err)
	}
	cfg := *c
	cfg.Brokers = append([]string(nil), c.Brokers...)
	cfg.SASL.Mechanism = strings.ToLower(cfg.SASL.Mechanism)
	return &Sink{
		name:          name,
		cfg:           cfg,
		viewNeedsData: templateNeedsData(cfg.Topic) || templateNeedsData(cfg.Key),
	}, nil
}

// ValidTopic applies Kafka's rules for topic names: 1 to 249 characters from
// [a-zA-Z0-9._-], and not "." or "..".
func ValidTopic(topic string) error {
	switch {
	case topic == "":
		return errors.New("topic name is empty")
	case len(topic) > 249:
		return fmt.Errorf("topic name is %d characters long, more than Kafka's 249", len(topic))
	case topic == "." || topic == "..":
		return fmt.Errorf("topic name %q is not allowed", topic)
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' {
			continue
		}
		return fmt.Errorf("topic name %q has %q; Kafka allows only letters, digits, '.', '_' and '-'", topic, c)
	}
	return nil
}

// CheckBroker reports what is wrong with a broker address, host:port. One
// with user info (user:password@host) is refused without being quoted:
// credentials go in sasl, and an error must not show them.
func CheckBroker(b string) error {
	if strings.ContainsAny(b, "@/") {
		return errors.New("a broker is host:port, without user info or a scheme; credentials go in sasl (the value is not shown)")
	}
	_, port, err := net.SplitHostPort(b)
	if err != nil || port == "" {
		return fmt.Errorf("%q is not host:port", b)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: the port must be a number from 1 to 65535", b)
	}
	return nil
}
