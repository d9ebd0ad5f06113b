package kafka

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/tmpl"
)

// decode decodes a sink's YAML mapping (with its type key) the way the
// loader does, and validates it.
func decode(t *testing.T, src string) (*Config, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("test YAML: %v", err)
	}
	var common struct {
		Type string `yaml:"type"`
	}
	cfg := NewConfig()
	d := &config.Decoder{File: "bridge.yaml"}
	d.DecodeInto(&doc, &common, cfg)
	if d.Err() == nil {
		d.Validate(&doc, cfg)
	}
	return cfg, d.Err()
}

func TestExampleIsValid(t *testing.T) {
	reg, ok := sinks.Lookup("kafka")
	if !ok {
		t.Fatal("kafka is not registered")
	}
	var named map[string]yaml.Node
	if err := yaml.Unmarshal([]byte(reg.Example), &named); err != nil {
		t.Fatalf("example: %v", err)
	}
	node := named["kafka-events"]
	out, err := yaml.Marshal(&node)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := decode(t, string(out))
	if err != nil {
		t.Fatalf("example does not decode: %v", err)
	}
	if cfg.Topic.String() != "webhooks.{{ .Extensions.bridgesource }}" || cfg.Mode != ModeBinary {
		t.Errorf("example decoded to %+v", cfg)
	}
	if _, ok := reg.NewConfig().(*Config); !ok {
		t.Errorf("NewConfig returns %T", reg.NewConfig())
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := decode(t, "type: kafka\nbrokers: [\"k1:9092\"]\ntopic: events\n")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"mode", cfg.Mode, ModeBinary},
		{"linger", cfg.Linger, time.Duration(0)},
		{"batch_messages", cfg.BatchMessages, 1000},
		{"batch_bytes", cfg.BatchBytes, config.Size(1 << 20)},
		{"compression", cfg.Compression, "none"},
		{"write_timeout", cfg.WriteTimeout, 10 * time.Second},
		{"allow_auto_topic_creation", cfg.AllowAutoTopicCreation, true},
		{"tls.enabled", cfg.TLS.Enabled, false},
		{"sasl.mechanism", cfg.SASL.Mechanism, ""},
		{"key", cfg.Key.IsZero(), true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	const base = "type: kafka\nbrokers: [\"k1:9092\"]\ntopic: events\n"
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error, with line:col
	}{
		{"no brokers", "type: kafka\ntopic: events\n", []string{"brokers: is required"}},
		{"broker without port", "type: kafka\nbrokers: [k1]\ntopic: events\n", []string{`bridge.yaml:2:1: brokers: "k1" is not host:port`}},
		{"broker with credentials", "type: kafka\nbrokers: [\"user:SECRET6@k1:9092\"]\ntopic: events\n", []string{"bridge.yaml:2:1: brokers: a broker is host:port, without user info"}},
		{"broker port not a number", "type: kafka\nbrokers: [\"k1:kafka\"]\ntopic: events\n", []string{`brokers: "k1:kafka": the port must be a number`}},
		{"no topic", "type: kafka\nbrokers: [\"k1:9092\"]\n", []string{"topic: is required"}},
		{"bad constant topic", "type: kafka\nbrokers: [\"k1:9092\"]\ntopic: \"a/b\"\n", []string{"bridge.yaml:3:1: topic:", "Kafka allows only"}},
		{"bad template", "type: kafka\nbrokers: [\"k1:9092\"]\ntopic: \"{{ .ID \"\n", []string{"bridge.yaml:3:8:", "bad template"}},
		{"mode", base + "mode: avro\n", []string{`bridge.yaml:4:1: mode: "avro" is not binary or structured`}},
		{"negative linger", base + "linger: -1s\n", []string{"linger: must not be negative"}},
		{"batch size", base + "batch_messages: 0\n", []string{"batch_messages: must be at least 1"}},
		{"batch bytes", base + "batch_bytes: 0\n", []string{"batch_bytes: must be more than 0"}},
		{"compression", base + "compression: brotli\n", []string{`compression: "brotli" is not one of none, gzip, snappy, lz4, zstd`}},
		{"write timeout", base + "write_timeout: 0\n", []string{"write_timeout: must be more than 0"}},
		{"cert without key", base + "tls: {enabled: true, cert_file: c.pem}\n", []string{"tls: cert_file and key_file go together"}},
		{"tls settings while off", base + "tls: {ca_file: ca.pem}\n", []string{"enabled is false"}},
		{"sasl mechanism", base + "sasl: {mechanism: gssapi, username: u, password: p}\n", []string{`mechanism "gssapi" is not one of`}},
		{"sasl without password", base + "sasl: {mechanism: plain, username: u}\n", []string{"password is required"}},
		{"sasl user without mechanism", base + "sasl: {username: u, password: p}\n", []string{"need a mechanism"}},
		{"unknown key", base + "acks: 1\n", []string{`bridge.yaml:4:1: unknown key "acks"`}},
		{"several at once", "type: kafka\nbrokers: []\ntopic: events\nbatch_messages: -1\ncompression: lzma\n", []string{"brokers:", "batch_messages:", "compression:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(t, tc.yaml)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error %q shows a credential", err)
			}
		})
	}
}

func TestValidConfigs(t *testing.T) {
	const base = "type: kafka\nbrokers: [\"k1:9092\", \"[::1]:9093\"]\ntopic: \"webhooks.{{ .Extensions.bridgesource }}\"\n"
	tests := map[string]string{
		"structured":      base + "mode: structured\nkey: \"{{ .Type }}\"\n",
		"linger zero":     base + "linger: 0\n",
		"mutual tls":      base + "tls: {enabled: true, ca_file: ca.pem, cert_file: c.pem, key_file: k.pem, server_name: kafka.internal}\n",
		"scram upper":     base + "sasl: {mechanism: SCRAM-SHA-512, username: u, password: p}\n",
		"zstd, big batch": base + "compression: zstd\nbatch_bytes: 8MiB\nbatch_messages: 5000\n",
	}
	for name, src := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, err := decode(t, src)
			if err != nil {
				t.Fatal(err)
			}
			// No I/O: the TLS files above do not exist, and NewSink must not care.
			if _, err := cfg.NewSink(name); err != nil {
				t.Fatalf("NewSink: %v", err)
			}
		})
	}
}

func TestValidTopic(t *testing.T) {
	tests := []struct {
		topic string
		ok    bool
	}{
		{"webhooks.helloclient", true},
		{"A-b_c.9", true},
		{strings.Repeat("t", 249), true},
		{strings.Repeat("t", 250), false},
		{"", false},
		{".", false},
		{"..", false},
		{"a b", false},
		{"a/b", false},
		{"café", false},
	}
	for _, tc := range tests {
		if err := ValidTopic(tc.topic); (err == nil) != tc.ok {
			t.Errorf("ValidTopic(%q) = %v, want ok=%v", tc.topic, err, tc.ok)
		}
	}
}

func TestTemplateNeedsData(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{"events", false},
		{"webhooks.{{ .Extensions.bridgesource }}", false},
		{"{{ .Type }}.{{ .Source | lower }}.{{ .DataContentType }}", false},
		{`{{ if eq .Type "x" }}a{{ else }}{{ .Subject | default .ID }}{{ end }}`, false},
		{"{{ range $k, $v := .Extensions }}{{ $k }}{{ end }}", false},
		{`{{ define "t" }}{{ .Type }}{{ end }}{{ template "t" }}`, false},
		{"{{ .Data.Email }}", true},
		{"{{ with .Data }}{{ .Email }}{{ end }}", true},
		{"{{ .Event.Data }}", true},
		{"{{ toJson . | sha256sum }}", true},
		{"{{ $.Data.x }}", true},
		{"{{ $v := . }}{{ $v.Type }}", true},
		{`{{ index . "Data" }}`, true},
		{`{{ define "t" }}{{ .Data.x }}{{ end }}{{ template "t" . }}`, true},
		{"{{ (.Extensions).bridgesource }}", false},
	}
	for _, tc := range tests {
		if got := templateNeedsData(tmpl.MustParse(tc.text)); got != tc.want {
			t.Errorf("templateNeedsData(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}
