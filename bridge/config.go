package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/delivery"
	"github.com/hookbridge/hookbridge/queue"
	"github.com/hookbridge/hookbridge/queue/kafkaqueue"
	"github.com/hookbridge/hookbridge/router"
	"github.com/hookbridge/hookbridge/server"
	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/sinks/kafka"
	"github.com/hookbridge/hookbridge/sources"
)

// File is a loaded, checked configuration file.
type File struct {
	Path   string
	Server ServerConfig
	Admin  AdminConfig
	Queue  QueueConfig
	Log    LogConfig
	// MemoryLimit is the `memory_limit` key (memoryLimitUnset when the file
	// leaves it out): see memoryLimit.
	MemoryLimit config.Size
	Sources     []*SourceSpec // in file order
	Sinks       []*SinkSpec   // in file order
	Routes      []router.Route
}

// ServerConfig is the `server` key: the webhook listener.
type ServerConfig struct {
	// Listen is the webhook listener's address. Default ":8080".
	Listen string `yaml:"listen"`
	// BodyLimit is the largest body a source accepts unless it sets its own. Default 1MiB.
	BodyLimit config.Size `yaml:"body_limit"`
	// TrustedProxies are the CIDRs whose X-Forwarded-For is believed. Default none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ReadTimeout bounds reading a request. Default 10s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing an answer. Default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// TLS makes the listener serve HTTPS. Default off (plain HTTP).
	TLS ServerTLS `yaml:"tls"`

	trusted []netip.Prefix
}

// ServerTLS is server.tls or admin.tls: a listener's certificate. Renewed
// files are picked up while the bridge runs (server.CertCheckInterval).
type ServerTLS struct {
	// CertFile is the PEM certificate, followed by its intermediates.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of the certificate.
	KeyFile string `yaml:"key_file"`
}

// Enabled reports whether the listener serves HTTPS.
func (t ServerTLS) Enabled() bool { return t.CertFile != "" }

// AdminConfig is the `admin` key: health, readiness and metrics.
type AdminConfig struct {
	// Listen is the admin listener's address; empty turns it off. Default "127.0.0.1:9090".
	Listen string `yaml:"listen"`
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// everything but /healthz and /readyz.
	Token string `yaml:"token"`
	// TLS makes the admin listener serve HTTPS. Default off.
	TLS ServerTLS `yaml:"tls"`
}

// Bounds of queue.dedup_memory: the smallest filter takes about 7 KiB, and a
// filter beyond 1 GiB would hold hundreds of millions of ids, more than any
// window of webhooks.
const (
	minDedupMemory config.Size = 64 << 10
	maxDedupMemory config.Size = 1 << 30
)

// minMaxHeldBytes is the least queue.max_held_bytes: less would hold a
// reader to one ordinary event at a time.
const minMaxHeldBytes config.Size = 64 << 10

// QueueConfig is the `queue` key.
type QueueConfig struct {
	// Type is "embedded" (default), a local store, or "kafka", a Kafka
	// topic that several bridge replicas share.
	Type string `yaml:"type"`
	// Path is the embedded store's directory. Default ./data/queue.
	Path string `yaml:"path"`
	// DedupWindow is how long an accepted event id is remembered. Default 24h.
	DedupWindow time.Duration `yaml:"dedup_window"`
	// DedupMemory is the memory of the filter that spares most new ids a
	// disk lookup. Default 4MiB: about 1.4 million ids in the window.
	DedupMemory config.Size `yaml:"dedup_memory"`
	// MinFreeSpace is the free space kept in reserve on the queue's disk:
	// below it (or below a twentieth of the disk, if that is less) new
	// events are answered 503 until space is freed, instead of the disk
	// filling up. Default 256MiB; 0 turns the check off.
	MinFreeSpace config.Size `yaml:"min_free_space"`
	// DedupWindow also applies to type kafka; the keys below are for it
	// alone.

	// Brokers are the Kafka bootstrap brokers, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// Topic is the ingress topic every replica writes and reads. Default
	// bridge.ingress.
	Topic string `yaml:"topic"`
	// Group names the consumer groups: each sink reads the topic as the
	// group "<group>.<sink>". Default bridge.
	Group string `yaml:"group"`
	// DeadLetterTopic receives the events no sink took and the request
	// bodies that could not be converted. Default <topic>.deadletter.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// StateTopic keeps what the replicas share (the Slack sinks' threads):
	// a compacted topic of one partition, created on first use. Default
	// <topic>.state.
	StateTopic string `yaml:"state_topic"`
	// MaxHeld is how many events each sink's reader holds in memory, read
	// and not yet delivered, before it pauses. Default 10000.
	MaxHeld int `yaml:"max_held"`
	// MaxHeldBytes bounds the same events by size: a reader holding this
	// much pauses too (it always takes one event). Default 16MiB.
	MaxHeldBytes config.Size `yaml:"max_held_bytes"`
	// DedupIDs is how many ids each sink's reader remembers within
	// dedup_window. Default 100000.
	DedupIDs int `yaml:"dedup_ids"`
	// DedupLookback is how many records before where a reader starts in a
	// partition (at its start, or after a rebalance) it reads back for their
	// ids. Default 10000.
	DedupLookback int `yaml:"dedup_lookback"`
	// SessionTimeout is how long the group waits for a replica that stopped
	// answering before its partitions go to the others. Default 10s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// CommitInterval is how often each sink's reader commits the offsets
	// of what it delivered. A replica killed between two commits has what
	// it delivered since the last one delivered again by the replica that
	// takes its partitions over. Default 200ms.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// TLS and SASL secure the connections to the brokers, as for the kafka sink.
	TLS  kafka.TLSConfig  `yaml:"tls"`
	SASL kafka.SASLConfig `yaml:"sasl"`
}

// LogConfig is the `log` key.
type LogConfig struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is text (default) or json.
	Format string `yaml:"format"`
}

// SourceCommon is the keys every source has.
type SourceCommon struct {
	// Type is the provider: helloclient, helpcrunch, crisp, ...
	Type string `yaml:"type"`
	// Path is where the source is served. Default /webhooks/<name>.
	Path string `yaml:"path"`
	// AllowIPs are the CIDRs a request may come from. Default any.
	AllowIPs []string `yaml:"allow_ips"`
	// BodyLimit overrides server.body_limit for this source.
	BodyLimit config.Size `yaml:"body_limit"`
}

// SourceSpec is one entry of `sources`.
type SourceSpec struct {
	Name   string
	Common SourceCommon
	Config sources.Config
	Node   *yaml.Node

	allow []netip.Prefix
}

// SinkCommon is the keys every sink has.
type SinkCommon struct {
	// Type is the kind: kafka, slack, http, file.
	Type string `yaml:"type"`
	// Enabled turns the sink off when false: routes skip it, and the bridge
	// says so once at start. Default true.
	Enabled *bool `yaml:"enabled"`

	delivery.Policy `yaml:",inline"`
}

// SinkSpec is one entry of `sinks`.
type SinkSpec struct {
	Name   string
	Common SinkCommon
	Config sinks.Config
	Node   *yaml.Node
}

// IsEnabled reports whether the sink is on.
func (s *SinkSpec) IsEnabled() bool { return s.Common.Enabled == nil || *s.Common.Enabled }

// Source returns the spec of the named source.
func (f *File) Source(name string) *SourceSpec {
	for _, s := range f.Sources {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Sink returns the spec of the named sink.
func (f *File) Sink(name string) *SinkSpec {
	for _, s := range f.Sinks {
		if s.Name == name {
			return s
		}
	}
	return nil
}

type fileShape struct {
	Server ServerConfig `yaml:"server"`
	Admin  AdminConfig  `yaml:"admin"`
	Queue  QueueConfig  `yaml:"queue"`
	Log    LogConfig    `yaml:"log"`
	// MemoryLimit is the soft limit on the memory of the Go runtime (heap,
	// stacks, the queue's cache and memtables): as the bridge nears it, the
	// collector runs more often. 0 turns it off. Default 64MiB, plus what
	// queue.dedup_memory asks beyond its default, unless GOMEMLIMIT is set.
	MemoryLimit config.Size `yaml:"memory_limit"`
	Sources     yaml.Node   `yaml:"sources"`
	Sinks       yaml.Node   `yaml:"sinks"`
	Routes      yaml.Node   `yaml:"routes"`
}

// Load reads and checks a configuration file, expanding ${VAR} from the
// environment. Every problem is returned at once as config.Errors.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// LoadSections is Load for commands that use only some sections of the
// file (bridge send: the listener and one source; bridge replay and
// discard: the admin listener). A problem outside those sections, such as
// a variable this shell lacks for a sink the command never builds, is not
// an error; one inside them is. A section is a path of keys from the top,
// such as {"sources", "crisp"}. The file must still be valid YAML, and
// what the returned File holds outside the sections may be incomplete.
func LoadSections(path string, sections ...[]string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	f, top, err := parseFile(path, data, os.LookupEnv)
	errs, ok := err.(config.Errors)
	if err == nil || !ok || f == nil {
		return f, err
	}
	// The lines are found in the merged tree (a section may be merged in
	// whole) and in the file as written (merging takes the "<<" keys out,
	// and a mistake may be at one).
	var written yaml.Node
	if err := yaml.Unmarshal(data, &written); err != nil || len(written.Content) == 0 {
		return nil, errs
	}
	lines := map[int]bool{}
	for _, sec := range sections {
		sectionLines(top, sec, lines)
		sectionLines(written.Content[0], sec, lines)
	}
	var kept config.Errors
	for _, e := range errs {
		if e.Line == 0 || lines[e.Line] { // about the whole file, or in a section
			kept = append(kept, e)
		}
	}
	if len(kept) > 0 {
		return nil, kept
	}
	return f, nil
}

// sectionLines adds to lines the line of the section at path under the
// top mapping and of everything it holds, following its aliases and
// merges (<<: *defaults): what they name may be written anywhere in the
// file, and a mistake there is the section's.
func sectionLines(top *yaml.Node, path []string, lines map[int]bool) {
	n := top
	var key *yaml.Node
	for _, name := range path {
		if key, n = config.Lookup(n, name); n == nil {
			return
		}
	}
	lines[key.Line] = true
	seen := map[*yaml.Node]bool{}
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		lines[n.Line] = true
		walk(n.Alias)
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
}

// Parse checks a configuration given as bytes; path names it in errors.
func Parse(path string, data []byte, lookup config.LookupFunc) (*File, error) {
	f, _, err := parseFile(path, data, lookup)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// parseFile is Parse, returning what it could read of the file (nil only when
// the YAML itself does not parse) with the errors, and the top node.
func parseFile(path string, data []byte, lookup config.LookupFunc) (*File, *yaml.Node, error) {
	d := &config.Decoder{File: path}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		e := config.Error{File: path, Msg: err.Error()}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Column = 1
			e.Msg = m[2]
		}
		return nil, nil, config.Errors{e}
	}
	if len(root.Content) == 0 {
		return nil, nil, config.Errors{{File: path, Msg: "the file is empty"}}
	}
	// yaml.Unmarshal reads the first document only: what follows a "---"
	// would be ignored, mistakes and all.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first yaml.Node
	if dec.Decode(&first) == nil {
		for {
			var next yaml.Node
			err := dec.Decode(&next)
			if err == io.EOF {
				break
			}
			empty := err == nil && (len(next.Content) == 0 || next.Content[0].Tag == "!!null")
			if !empty {
				e := config.Error{File: path, Msg: "the file holds more than one YAML document; the bridge reads one"}
				if err == nil {
					e.Line, e.Column = next.Line, 1
				}
				return nil, nil, config.Errors{e}
			}
		}
	}
	d.Merge(&root)
	d.Expand(&root, lookup)
	shape := fileShape{
		Server: ServerConfig{Listen: ":8080", BodyLimit: 1 << 20, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second},
		Admin:  AdminConfig{Listen: "127.0.0.1:9090"},
		Queue: QueueConfig{Type: "embedded", Path: "./data/queue", DedupWindow: 24 * time.Hour, DedupMemory: queue.DefaultDedupMemory, MinFreeSpace: queue.DefaultMinFreeSpace,
			Topic: "bridge.ingress", Group: "bridge", MaxHeld: kafkaqueue.DefaultMaxHeld, MaxHeldBytes: kafkaqueue.DefaultMaxHeldBytes, SessionTimeout: kafkaqueue.DefaultSessionTimeout,
			DedupIDs: kafkaqueue.DefaultMaxDedupIDs, DedupLookback: kafkaqueue.DefaultDedupLookback, CommitInterval: kafkaqueue.DefaultCommitInterval},
		Log:         LogConfig{Level: "info", Format: "text"},
		MemoryLimit: memoryLimitUnset,
	}
	top := root.Content[0]
	d.Decode(withoutExtensions(top), &shape)
	if shape.Queue.DeadLetterTopic == "" {
		shape.Queue.DeadLetterTopic = shape.Queue.Topic + kafkaqueue.DeadLetterSuffix
	}
	if shape.Queue.StateTopic == "" {
		shape.Queue.StateTopic = shape.Queue.Topic + kafkaqueue.StateSuffix
	}
	f := &File{Path: path, Server: shape.Server, Admin: shape.Admin, Queue: shape.Queue, Log: shape.Log, MemoryLimit: shape.MemoryLimit}
	checkTop(d, top, f)
	f.Sources = loadSources(d, &shape.Sources, f)
	f.Sinks = loadSinks(d, &shape.Sinks)
	if shape.Routes.Kind != 0 {
		f.Routes = router.Decode(d, &shape.Routes)
	}
	checkRefs(d, f, &shape.Routes)
	return f, top, d.Err()
}

// withoutExtensions is the top mapping without its x- keys, which hold
// anchors for the rest of the file and are not the bridge's to read.
func withoutExtensions(top *yaml.Node) *yaml.Node {
	if top.Kind != yaml.MappingNode {
		return top
	}
	kept := *top
	kept.Content = nil
	for i := 0; i+1 < len(top.Content); i += 2 {
		if !config.IsExtension(top.Content[i].Value) {
			kept.Content = append(kept.Content, top.Content[i], top.Content[i+1])
		}
	}
	return &kept
}

func checkTop(d *config.Decoder, top *yaml.Node, f *File) {
	at := func(section, key string) *yaml.Node {
		_, sec := config.Lookup(top, section)
		if k, _ := config.Lookup(sec, key); k != nil {
			return k
		}
		if k, _ := config.Lookup(top, section); k != nil {
			return k
		}
		return top
	}
	for _, c := range f.Server.TrustedProxies {
		p, err := parsePrefix(c)
		if err != nil {
			d.Errorf(at("server", "trusted_proxies"), "server.trusted_proxies: %v", err)
			continue
		}
		f.Server.trusted = append(f.Server.trusted, p)
	}
	if f.Server.BodyLimit <= 0 {
		d.Errorf(at("server", "body_limit"), "server.body_limit must be positive")
	}
	if f.Server.Listen == "" {
		d.Errorf(at("server", "listen"), "server.listen must not be empty")
	} else if _, _, err := net.SplitHostPort(f.Server.Listen); err != nil {
		d.Errorf(at("server", "listen"), "server.listen %q is not host:port (\":8080\", \"127.0.0.1:8080\")", f.Server.Listen)
	}
	if f.Admin.Listen != "" {
		if _, port, err := net.SplitHostPort(f.Admin.Listen); err != nil {
			d.Errorf(at("admin", "listen"), "admin.listen %q is not host:port (\"127.0.0.1:9090\"; \"\" turns the admin listener off)", f.Admin.Listen)
		} else if f.Admin.Listen == f.Server.Listen && port != "0" { // port 0: each picks a free one
			d.Errorf(at("admin", "listen"), "admin.listen must differ from server.listen (%s)", f.Server.Listen)
		}
	}
	for key, v := range map[string]time.Duration{"read_timeout": f.Server.ReadTimeout, "write_timeout": f.Server.WriteTimeout, "idle_timeout": f.Server.IdleTimeout} {
		if v < 0 {
			d.Errorf(at("server", key), "server.%s must not be negative, not %s", key, v)
		}
	}
	for _, section := range []string{"server", "admin"} {
		t := f.Server.TLS
		if section == "admin" {
			t = f.Admin.TLS
		}
		switch {
		case t.CertFile == "" && t.KeyFile == "":
		case t.CertFile == "" || t.KeyFile == "":
			d.Errorf(at(section, "tls"), "%s.tls needs both cert_file and key_file", section)
		default:
			if _, err := server.LoadKeyPair(t.CertFile, t.KeyFile); err != nil {
				d.Errorf(at(section, "tls"), "%s.tls: %v", section, err)
			}
		}
	}
	// A key of the other queue type would be silently ignored: it is an
	// error, as an unknown key is.
	_, queueNode := config.Lookup(top, "queue")
	otherType := func(typ string, keys ...string) {
		for _, key := range keys {
			if k, _ := config.Lookup(queueNode, key); k != nil {
				d.Errorf(k, "queue.%s is for queue type %s, and this queue is %s", key, typ, f.Queue.Type)
			}
		}
	}
	switch f.Queue.Type {
	case "embedded":
		if f.Queue.Path == "" {
			d.Errorf(at("queue", "path"), "queue.path must not be empty")
		}
		otherType("kafka", "brokers", "topic", "group", "dead_letter_topic", "state_topic", "max_held", "max_held_bytes", "dedup_ids", "dedup_lookback", "session_timeout", "commit_interval", "tls", "sasl")
	case "kafka":
		checkKafkaQueue(d, f.Queue, at)
		otherType("embedded", "path", "dedup_memory", "min_free_space")
	default:
		d.Errorf(at("queue", "type"), "unknown queue type %q (embedded or kafka)", f.Queue.Type)
	}
	// 0 is refused rather than given a meaning: dedup cannot be turned off
	// (a provider's retry must not reach the sinks twice), and "the
	// default" would surprise whoever wrote it.
	if f.Queue.DedupWindow <= 0 || f.Queue.DedupWindow > queue.MaxDedupWindow {
		d.Errorf(at("queue", "dedup_window"), "queue.dedup_window must be more than 0 and at most %s (366 days), not %s", queue.MaxDedupWindow, f.Queue.DedupWindow)
	}
	if f.Queue.DedupMemory < minDedupMemory || f.Queue.DedupMemory > maxDedupMemory {
		d.Errorf(at("queue", "dedup_memory"), "queue.dedup_memory must be between %s and %s, not %s", minDedupMemory, maxDedupMemory, f.Queue.DedupMemory)
	}
	switch strings.ToLower(f.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		d.Errorf(at("log", "level"), "log.level must be debug, info, warn or error, not %q", f.Log.Level)
	}
	f.Log.Format = strings.ToLower(f.Log.Format) // as log.level is read
	if f.Log.Format != "text" && f.Log.Format != "json" {
		d.Errorf(at("log", "format"), "log.format must be text or json, not %q", f.Log.Format)
	}
	if f.MemoryLimit > 0 && f.MemoryLimit < minMemoryLimit {
		k, _ := config.Lookup(top, "memory_limit")
		d.Errorf(k, "memory_limit must be 0 (off) or at least %s, not %s: below it the collector would run without pause", minMemoryLimit, f.MemoryLimit)
	}
}

// checkKafkaQueue checks the keys of queue type kafka.
func checkKafkaQueue(d *config.Decoder, q QueueConfig, at func(section, key string) *yaml.Node) {
	if len(q.Brokers) == 0 {
		d.Errorf(at("queue", "brokers"), "queue.brokers is required with type kafka: list at least one host:port")
	}
	for _, b := range q.Brokers {
		if err := kafka.CheckBroker(b); err != nil {
			d.Errorf(at("queue", "brokers"), "queue.brokers: %v", err)
		}
	}
	for key, topic := range map[string]string{"topic": q.Topic, "dead_letter_topic": q.DeadLetterTopic, "state_topic": q.StateTopic} {
		if err := kafka.ValidTopic(topic); err != nil {
			d.Errorf(at("queue", key), "queue.%s: %v", key, err)
		}
	}
	if q.Topic == q.DeadLetterTopic {
		d.Errorf(at("queue", "dead_letter_topic"), "queue.dead_letter_topic must differ from queue.topic")
	}
	if q.StateTopic == q.Topic || q.StateTopic == q.DeadLetterTopic {
		d.Errorf(at("queue", "state_topic"), "queue.state_topic must differ from queue.topic and queue.dead_letter_topic")
	}
	if q.Group == "" {
		d.Errorf(at("queue", "group"), "queue.group must not be empty")
	}
	if q.MaxHeld < 1 {
		d.Errorf(at("queue", "max_held"), "queue.max_held must be at least 1, not %d", q.MaxHeld)
	}
	if q.MaxHeldBytes < minMaxHeldBytes {
		d.Errorf(at("queue", "max_held_bytes"), "queue.max_held_bytes must be at least %s, not %s", minMaxHeldBytes, q.MaxHeldBytes)
	}
	if q.DedupIDs < 1 {
		d.Errorf(at("queue", "dedup_ids"), "queue.dedup_ids must be at least 1, not %d", q.DedupIDs)
	}
	if q.DedupLookback < 1 {
		d.Errorf(at("queue", "dedup_lookback"), "queue.dedup_lookback must be at least 1, not %d", q.DedupLookback)
	}
	if q.SessionTimeout < time.Second {
		d.Errorf(at("queue", "session_timeout"), "queue.session_timeout must be at least 1s, not %s", q.SessionTimeout)
	}
	if q.CommitInterval < 10*time.Millisecond || q.CommitInterval > time.Minute {
		d.Errorf(at("queue", "commit_interval"), "queue.commit_interval must be between 10ms and 1m, not %s", q.CommitInterval)
	}
	// The files are read here, as server.tls's are, so that a missing one
	// is a mistake at its line rather than a queue that cannot be opened.
	if err := q.TLS.Validate(); err != nil {
		d.Errorf(at("queue", "tls"), "queue.%v", err)
	} else if err := q.TLS.CheckFiles(); err != nil {
		d.Errorf(at("queue", "tls"), "queue.%v", err)
	}
	if err := q.SASL.Validate(); err != nil {
		d.Errorf(at("queue", "sasl"), "queue.%v", err)
	}
}

// parsePrefix reads a CIDR, or a bare address as a single-host prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func entries(d *config.Decoder, node *yaml.Node, section string) [][2]*yaml.Node {
	if node.Kind == 0 || (node.Kind == yaml.ScalarNode && node.Tag == "!!null") {
		return nil
	}
	if node.Kind != yaml.MappingNode {
		d.Errorf(node, "%s must be a mapping of name to settings", section)
		return nil
	}
	var out [][2]*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		if seen[k.Value] {
			d.Errorf(k, "%s: %q is defined twice", section, k.Value)
			continue
		}
		seen[k.Value] = true
		if !namePattern.MatchString(k.Value) {
			d.Errorf(k, "%s: name %q must be letters, digits, '.', '_' or '-'", section, k.Value)
			continue
		}
		if v = config.Resolve(v); v.Kind != yaml.MappingNode {
			d.Errorf(v, "%s.%s must be a mapping with at least a type", section, k.Value)
			continue
		}
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out
}

func typeOf(d *config.Decoder, section, name string, key, node *yaml.Node, known []string) (string, bool) {
	_, t := config.Lookup(node, "type")
	if t == nil || t.Value == "" {
		d.Errorf(key, "%s.%s: type is required (one of %s)", section, name, strings.Join(known, ", "))
		return "", false
	}
	return t.Value, true
}

func loadSources(d *config.Decoder, node *yaml.Node, f *File) []*SourceSpec {
	var out []*SourceSpec
	paths := map[string]string{}
	for _, kv := range entries(d, node, "sources") {
		key, n := kv[0], kv[1]
		typ, ok := typeOf(d, "sources", key.Value, key, n, sources.Types())
		if !ok {
			continue
		}
		reg, ok := sources.Lookup(typ)
		if !ok {
			_, tn := config.Lookup(n, "type")
			d.Errorf(tn, "sources.%s: unknown type %q (known: %s)", key.Value, typ, strings.Join(sources.Types(), ", "))
			continue
		}
		spec := &SourceSpec{Name: key.Value, Config: reg.NewConfig(), Node: n}
		// Checked even after a key did not decode, so that every mistake
		// of the source is reported at once.
		d.DecodeInto(n, &spec.Common, spec.Config)
		d.Validate(n, spec.Config)
		if spec.Common.Path == "" {
			spec.Common.Path = "/webhooks/" + spec.Name
		}
		if !strings.HasPrefix(spec.Common.Path, "/") {
			k, _ := config.Lookup(n, "path")
			d.Errorf(k, "sources.%s: path must start with /", spec.Name)
		} else if u, err := url.Parse(spec.Common.Path); err != nil || u.Path != spec.Common.Path || u.RawQuery != "" || strings.ContainsAny(spec.Common.Path, " %") {
			// Served as written: a space, an escape or a query would make
			// a path no request matches.
			k, _ := config.Lookup(n, "path")
			d.Errorf(k, "sources.%s: path %q must be a plain URL path (no spaces, escapes or query)", spec.Name, spec.Common.Path)
		}
		if other, dup := paths[spec.Common.Path]; dup {
			k, _ := config.Lookup(n, "path")
			if k == nil {
				k = key
			}
			d.Errorf(k, "sources.%s: path %s is already served by source %s", spec.Name, spec.Common.Path, other)
		}
		paths[spec.Common.Path] = spec.Name
		for _, c := range spec.Common.AllowIPs {
			p, err := parsePrefix(c)
			if err != nil {
				k, _ := config.Lookup(n, "allow_ips")
				d.Errorf(k, "sources.%s.allow_ips: %v", spec.Name, err)
				continue
			}
			spec.allow = append(spec.allow, p)
		}
		if g, ok := spec.Config.(sources.IPGuarded); ok && g.NeedsAllowIPs() && len(spec.Common.AllowIPs) == 0 {
			d.Errorf(key, "sources.%s: this source authenticates nothing by itself; set allow_ips to the provider's addresses", spec.Name)
		}
		if spec.Common.BodyLimit < 0 {
			k, _ := config.Lookup(n, "body_limit")
			d.Errorf(k, "sources.%s: body_limit must not be negative", spec.Name)
		}
		if spec.Common.BodyLimit == 0 {
			spec.Common.BodyLimit = f.Server.BodyLimit
		}
		out = append(out, spec)
	}
	return out
}

func loadSinks(d *config.Decoder, node *yaml.Node) []*SinkSpec {
	var out []*SinkSpec
	for _, kv := range entries(d, node, "sinks") {
		key, n := kv[0], kv[1]
		typ, ok := typeOf(d, "sinks", key.Value, key, n, sinks.Types())
		if !ok {
			continue
		}
		reg, ok := sinks.Lookup(typ)
		if !ok {
			_, tn := config.Lookup(n, "type")
			d.Errorf(tn, "sinks.%s: unknown type %q (known: %s)", key.Value, typ, strings.Join(sinks.Types(), ", "))
			continue
		}
		spec := &SinkSpec{Name: key.Value, Config: reg.NewConfig(), Node: n}
		spec.Common.Policy = delivery.DefaultPolicy()
		spec.Common.Policy.RateLimit = reg.DefaultRateLimit
		// Checked even after a key did not decode, so that every mistake
		// of the sink is reported at once.
		d.DecodeInto(n, &spec.Common, spec.Config)
		d.Validate(n, &spec.Common.Policy)
		if spec.IsEnabled() {
			// A disabled sink may leave its required values empty.
			d.Validate(n, spec.Config)
			if fc, ok := spec.Config.(sinks.FileChecker); ok {
				// A file that is missing now is a mistake in the
				// config, not an outage to wait out: it is reported
				// here, at its key, with the rest. (A key Validate
				// blamed already is not blamed again.)
				d.Validate(n, validatorFunc(fc.CheckFiles))
			}
		}
		out = append(out, spec)
	}
	return out
}

// validatorFunc makes a check that reports as Validate does (FieldErrors
// blaming keys) a config.Validator, for Decoder.Validate to place its
// errors.
type validatorFunc func() error

func (f validatorFunc) Validate() error { return f() }

// checkRefs checks that every sink a route or dead_letter names exists.
func checkRefs(d *config.Decoder, f *File, routes *yaml.Node) {
	names := make([]string, 0, len(f.Sinks))
	byName := map[string]*SinkSpec{}
	for _, s := range f.Sinks {
		names = append(names, s.Name)
		byName[s.Name] = s
	}
	sort.Strings(names)
	known := strings.Join(names, ", ")
	if known == "" {
		known = "none are defined"
	}
	for _, s := range f.Sinks {
		dl := s.Common.DeadLetter
		if dl == "" {
			continue
		}
		k, _ := config.Lookup(s.Node, "dead_letter")
		switch {
		case dl == s.Name:
			d.Errorf(k, "sinks.%s: dead_letter cannot be the sink itself", s.Name)
		case byName[dl] == nil:
			d.Errorf(k, "sinks.%s: dead_letter names unknown sink %q (sinks: %s)", s.Name, dl, known)
		}
	}
	if routes.Kind != yaml.SequenceNode {
		return
	}
	for _, r := range routes.Content {
		_, name := config.Lookup(r, "name")
		_, list := config.Lookup(r, "sinks")
		if list == nil || list.Kind != yaml.SequenceNode {
			continue
		}
		for _, ref := range list.Content {
			if byName[ref.Value] == nil {
				rn := ""
				if name != nil {
					rn = name.Value
				}
				d.Errorf(ref, "route %q: unknown sink %q (sinks: %s)", rn, ref.Value, known)
			}
		}
	}
}

// ErrNoSources is returned by Build for a file that defines no source.
var ErrNoSources = errors.New("no sources are configured")
