package kafka

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/tmpl"
)

// Sink writes CloudEvents to Kafka with one kafka-go Writer (acks=all). It
// is safe for concurrent use; concurrent deliveries share the Writer's
// per-partition batches.
type Sink struct {
	name string
	cfg  Config
	// viewNeedsData: the topic or key template may read the payload.
	viewNeedsData bool

	mu        sync.Mutex
	writer    *kafkago.Writer
	transport *kafkago.Transport
	closed    bool
}

// Interface guards.
var (
	_ sinks.Sink      = (*Sink)(nil)
	_ sinks.BatchSink = (*Sink)(nil)
	_ sinks.Starter   = (*Sink)(nil)
	_ sinks.Pipeliner = (*Sink)(nil)
	_ sinks.Previewer = (*Sink)(nil)
)

// errClosed is returned for deliveries after Close; they are retryable, so
// the events stay queued for the next run.
var errClosed = errors.New("sink is closed")

// writerMaxAttempts is how often kafka-go itself tries one batch (a leader
// change, a dropped connection) before the delivery fails and the delivery
// loop takes over.
const writerMaxAttempts = 3

// Start reads the TLS files and builds the writer. It opens no connection:
// the first delivery does, so a broker that is down delays deliveries, never
// the bridge's start. Deliveries before Start start the sink themselves.
func (s *Sink) Start(ctx context.Context) error {
	_, err := s.getWriter()
	return err
}

func (s *Sink) getWriter() (*kafkago.Writer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if s.writer != nil {
		return s.writer, nil
	}
	transport, err := s.newTransport()
	if err != nil {
		return nil, fmt.Errorf("kafka sink %q: %w", s.name, err)
	}
	linger := s.cfg.Linger
	if linger <= 0 {
		// kafka-go reads 0 as its 1 s default; a nanosecond flushes as soon
		// as the messages of one call are in.
		linger = time.Nanosecond
	}
	s.transport = transport
	s.writer = &kafkago.Writer{
		Addr:                   kafkago.TCP(s.cfg.Brokers...),
		Balancer:               &kafkago.Murmur2Balancer{},
		MaxAttempts:            writerMaxAttempts,
		BatchSize:              s.cfg.BatchMessages,
		BatchBytes:             int64(s.cfg.BatchBytes),
		BatchTimeout:           linger,
		WriteTimeout:           s.cfg.WriteTimeout,
		ReadTimeout:            s.cfg.WriteTimeout,
		RequiredAcks:           kafkago.RequireAll,
		Async:                  true,
		Completion:             completed,
		Compression:            compressionCodec(s.cfg.Compression),
		Transport:              transport,
		AllowAutoTopicCreation: s.cfg.AllowAutoTopicCreation,
		ErrorLogger: kafkago.LoggerFunc(func(format string, args ...any) {
			slog.Debug(fmt.Sprintf(format, args...), "sink", s.name)
		}),
	}
	return s.writer, nil
}

func compressionCodec(name string) kafkago.Compression {
	switch name {
	case "gzip":
		return kafkago.Gzip
	case "snappy":
		return kafkago.Snappy
	case "lz4":
		return kafkago.Lz4
	case "zstd":
		return kafkago.Zstd
	}
	return 0
}

func (s *Sink) newTransport() (*kafkago.Transport, error) {
	tlsConfig, mech, err := ClientSecurity(s.cfg.TLS, s.cfg.SASL)
	if err != nil {
		return nil, err
	}
	return &kafkago.Transport{ClientID: "hookbridge", TLS: tlsConfig, SASL: mech}, nil
}

// ClientSecurity builds what a kafka-go client needs from the tls and sasl
// blocks: the TLS config (nil when off) and the SASL mechanism (nil when
// none). It reads the TLS files. The Kafka-backed queue uses it too.
func ClientSecurity(t TLSConfig, s SASLConfig) (*tls.Config, sasl.Mechanism, error) {
	var tlsConfig *tls.Config
	if t.Enabled {
		var err error
		if tlsConfig, err = t.load(); err != nil {
			return nil, nil, fmt.Errorf("tls: %w", err)
		}
	}
	if s.Mechanism == "" {
		return tlsConfig, nil, nil
	}
	mech, err := s.mechanism()
	if err != nil {
		return nil, nil, err
	}
	return tlsConfig, mech, nil
}

// load reads the files of c and builds the TLS config they make.
func (c TLSConfig) load() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // the user's explicit choice
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading cert_file and key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (c SASLConfig) mechanism() (sasl.Mechanism, error) {
	switch strings.ToLower(c.Mechanism) {
	case "plain":
		return plain.Mechanism{Username: c.Username, Password: c.Password}, nil
	case "scram-sha-256", "scram-sha-512":
		algo := scram.SHA256
		if c.Mechanism == "scram-sha-512" {
			algo = scram.SHA512
		}
		mech, err := scram.Mechanism(algo, c.Username, c.Password)
		if err != nil {
			return nil, fmt.Errorf("sasl: %w", err)
		}
		return mech, nil
	}
	return nil, fmt.Errorf("sasl: unknown mechanism %q", c.Mechanism)
}

// Deliver sends one event; it is DeliverBatch of one.
func (s *Sink) Deliver(ctx context.Context, ev *event.Event) error {
	return s.DeliverBatch(ctx, []*event.Event{ev})[0]
}

// DeliverBatch sends evs with one WriteMessages call and returns one error
// per event. A template that fails to render, an invalid topic name, an
// invalid event and a message too large are permanent (sinks.Permanent);
// broker and network failures are retryable.
func (s *Sink) DeliverBatch(ctx context.Context, evs []*event.Event) []error {
	return s.StartBatch(ctx, evs)(ctx)
}

// StartBatch implements sinks.Pipeliner: it maps evs to Kafka messages,
// rendering their topics and keys, and hands them to the Writer, which
// sends each partition's batches one request at a time in the order it was
// given them. A message that cannot be built fails its event for good and is
// not sent. wait gives the outcome, within write_timeout (and linger) of
// its call.
func (s *Sink) StartBatch(ctx context.Context, evs []*event.Event) (wait func(context.Context) []error) {
	errs := make([]error, len(evs))
	msgs := make([]kafkago.Message, 0, len(evs))
	index := make([]int, 0, len(evs)) // msgs[j] is evs[index[j]]
	var sources sourceStrings
	for i, ev := range evs {
		msg, err := s.message(ev, &sources)
		if err != nil {
			errs[i] = sinks.Permanent(fmt.Errorf("kafka sink %q: %w", s.name, err))
			continue
		}
		msgs = append(msgs, msg)
		index = append(index, i)
	}
	done := func(context.Context) []error { return errs }
	if len(msgs) == 0 {
		return done
	}
	w, err := s.getWriter()
	if err != nil {
		for _, i := range index {
			errs[i] = err
		}
		return done
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	waitMsgs := s.start(ctx, w, msgs)
	return func(ctx context.Context) []error {
		for j, err := range waitMsgs(ctx) {
			errs[index[j]] = err
		}
		return errs
	}
}

// message renders the topic and key of ev and maps it to a Kafka message.
// sources remembers source strings across the events of a batch.
func (s *Sink) message(ev *event.Event, sources *sourceStrings) (kafkago.Message, error) {
	if ev == nil {
		return kafkago.Message{}, errors.New("no event")
	}
	msg, err := toMessage(ev, s.cfg.Mode, sources)
	if err != nil {
		return kafkago.Message{}, err
	}
	var view *tmpl.View // built once, only for templates with actions
	render := func(t *tmpl.Template) (string, error) {
		if t.IsConstant() {
			return t.String(), nil
		}
		if out, ok, err := t.RenderAttributes(ev); ok {
			return out, err
		}
		if view == nil {
			if s.viewNeedsData {
				view = tmpl.NewView(ev)
			} else {
				view = tmpl.NewAttributesView(ev)
			}
		}
		return t.Render(view)
	}
	topic, err := render(s.cfg.Topic)
	if err != nil {
		return kafkago.Message{}, fmt.Errorf("topic: %w", err)
	}
	if err := ValidTopic(topic); err != nil {
		return kafkago.Message{}, fmt.Errorf("topic template %q: %w", s.cfg.Topic.String(), err)
	}
	msg.Topic = topic

	key := ev.Subject()
	if key == "" {
		key = ev.ID()
	}
	if !s.cfg.Key.IsZero() {
		if key, err = render(s.cfg.Key); err != nil {
			return kafkago.Message{}, fmt.Errorf("key: %w", err)
		}
	}
	if key != "" {
		msg.Key = []byte(key)
	}
	if size := messageSize(&msg); size > int64(s.cfg.BatchBytes) {
		return kafkago.Message{}, fmt.Errorf("message of about %d bytes is larger than batch_bytes (%s): %w",
			size, s.cfg.BatchBytes, kafkago.MessageSizeTooLarge)
	}
	return msg, nil
}

// Preview shows the record Deliver would write for ev, for dry runs: its
// topic and key (templates rendered), its headers and its value. It opens no
// connection.
func (s *Sink) Preview(ev *event.Event) ([]byte, error) {
	msg, err := s.message(ev, nil)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "topic: %s\n", msg.Topic)
	if msg.Key == nil {
		out.WriteString("key: (none)\n")
	} else {
		fmt.Fprintf(&out, "key: %s\n", msg.Key)
	}
	for _, h := range msg.Headers {
		fmt.Fprintf(&out, "%s: %s\n", h.Key, h.Value)
	}
	out.WriteByte('\n')
	out.Write(msg.Value)
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// messageSize is a message's size in a record batch, near enough to reject a
// message kafka-go would refuse as a whole call.
func messageSize(m *kafkago.Message) int64 {
	n := int64(len(m.Key) + len(m.Value) + 32)
	for _, h := range m.Headers {
		n += int64(len(h.Key) + len(h.Value) + 10)
	}
	return n
}

// A flight is one call's messages handed to the Writer, which runs
// asynchronously: it learns each message's outcome from the Writer's
// Completion calls (completed), through the slot each message carries in
// its WriterData.
type flight struct {
	// refs counts the messages inside the Writer, plus one while the
	// messages are being handed over; done is closed when it reaches 0.
	refs  atomic.Int64
	done  chan struct{}
	early []error // refused before they reached the Writer; set while handing over
	late  []error // the Writer's outcome; read once done is closed
	slots []slot
}

// slot ties a message inside the Writer to its flight.
type slot struct {
	f *flight
	i int
}

func newFlight(msgs []kafkago.Message) *flight {
	f := &flight{
		done:  make(chan struct{}),
		early: make([]error, len(msgs)),
		late:  make([]error, len(msgs)),
		slots: make([]slot, len(msgs)),
	}
	f.refs.Store(1)
	for i := range msgs {
		f.slots[i] = slot{f: f, i: i}
		msgs[i].WriterData = &f.slots[i]
	}
	return f
}

func (f *flight) release(n int64) {
	if f.refs.Add(-n) == 0 {
		close(f.done)
	}
}

// completed is the Writer's Completion: kafka-go calls it once it has
// written a batch of one partition, or given up on it.
func completed(msgs []kafkago.Message, err error) {
	for i := range msgs {
		if sl, ok := msgs[i].WriterData.(*slot); ok {
			if err != nil {
				sl.f.late[sl.i] = err
			}
			sl.f.release(1)
		}
	}
}

// start hands msgs to w, an asynchronous Writer, and returns what waits for
// their outcome: one error per message.
func (s *Sink) start(ctx context.Context, w *kafkago.Writer, msgs []kafkago.Message) (wait func(context.Context) []error) {
	f := newFlight(msgs)
	if err := ctx.Err(); err != nil {
		for i := range msgs {
			f.early[i] = s.classify(msgs[i].Topic, err)
		}
	} else {
		pending := make([]int, len(msgs)) // indexes into msgs still to hand over
		for i := range pending {
			pending[i] = i
		}
		s.hand(ctx, w, msgs, pending, f)
	}
	f.release(1)
	return func(ctx context.Context) []error {
		errs := make([]error, len(msgs))
		timeout := s.cfg.WriteTimeout + s.cfg.Linger
		t := time.NewTimer(timeout)
		defer t.Stop()
		var cause error
		select {
		case <-f.done:
			for i := range errs {
				errs[i] = f.early[i]
				if errs[i] == nil && f.late[i] != nil {
					errs[i] = s.classify(msgs[i].Topic, f.late[i])
				}
			}
			return errs
		case <-ctx.Done():
			cause = ctx.Err()
		case <-t.C:
			cause = fmt.Errorf("no answer within write_timeout (%s): %w", timeout, context.DeadlineExceeded)
		}
		// Still inside the Writer, which may yet deliver them: retried,
		// they may arrive twice, never not at all.
		for i := range errs {
			errs[i] = f.early[i]
			if errs[i] == nil {
				errs[i] = s.classify(msgs[i].Topic, cause)
			}
		}
		return errs
	}
}

// hand gives the messages msgs[i], i in pending, to w in one WriteMessages
// call. A refused call hands over nothing: a message kafka-go refuses as a
// whole call for its size fails for good and the rest go again; a call
// refused for other reasons (metadata, connection) fails all, after trying
// each topic on its own when the messages span topics, so that one bad
// topic does not fail the others.
func (s *Sink) hand(ctx context.Context, w *kafkago.Writer, msgs []kafkago.Message, pending []int, f *flight) {
	for len(pending) > 0 {
		batch := msgs // kafka-go copies what it keeps
		if len(pending) < len(msgs) {
			batch = make([]kafkago.Message, len(pending))
			for j, i := range pending {
				batch[j] = msgs[i]
			}
		}
		f.refs.Add(int64(len(batch)))
		err := w.WriteMessages(ctx, batch...)
		if err == nil {
			return
		}
		f.release(int64(len(batch))) // never 0: the hand-over holds a reference

		var tooLarge kafkago.MessageTooLargeError
		if errors.As(err, &tooLarge) {
			if j := findMessage(batch, tooLarge.Message); j >= 0 {
				i := pending[j]
				f.early[i] = sinks.Permanent(fmt.Errorf("kafka sink %q: topic %s: %w", s.name, msgs[i].Topic, err))
				pending = append(pending[:j:j], pending[j+1:]...)
				continue
			}
		}
		if ctx.Err() == nil && spansTopics(batch) {
			s.handEachTopic(ctx, w, msgs, pending, f)
			return
		}
		for _, i := range pending {
			f.early[i] = s.classify(msgs[i].Topic, err)
		}
		return
	}
}

func (s *Sink) handEachTopic(ctx context.Context, w *kafkago.Writer, msgs []kafkago.Message, pending []int, f *flight) {
	byTopic := map[string][]int{}
	for _, i := range pending {
		byTopic[msgs[i].Topic] = append(byTopic[msgs[i].Topic], i)
	}
	var wg sync.WaitGroup
	for _, indexes := range byTopic {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.hand(ctx, w, msgs, indexes, f) // distinct indexes per goroutine
		}()
	}
	wg.Wait()
}

func spansTopics(msgs []kafkago.Message) bool {
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Topic != msgs[0].Topic {
			return true
		}
	}
	return false
}

func findMessage(msgs []kafkago.Message, m kafkago.Message) int {
	for j := range msgs {
		if sameMessage(&msgs[j], &m) {
			return j
		}
	}
	return -1
}

func sameMessage(a, b *kafkago.Message) bool {
	if a.Topic != b.Topic || string(a.Key) != string(b.Key) || string(a.Value) != string(b.Value) || len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || string(a.Headers[i].Value) != string(b.Headers[i].Value) {
			return false
		}
	}
	return true
}

// permanentCodes are broker answers that no retry can change: the message
// itself or its topic name is wrong.
var permanentCodes = []kafkago.Error{
	kafkago.MessageSizeTooLarge,
	kafkago.RecordListTooLarge,
	kafkago.InvalidTopic,
	kafkago.InvalidRecord,
}

func (s *Sink) classify(topic string, err error) error {
	err = fmt.Errorf("kafka sink %q: topic %s: %w", s.name, topic, err)
	for _, code := range permanentCodes {
		if errors.Is(err, code) {
			return sinks.Permanent(err)
		}
	}
	return err
}

// Close flushes the messages the writer still holds and closes its
// connections. It is safe without Start and more than once; if ctx ends
// first, Close returns its error and the flush goes on in the background.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	w, t := s.writer, s.transport
	s.closed = true
	s.writer, s.transport = nil, nil
	s.mu.Unlock()
	if w == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		err := w.Close()
		t.CloseIdleConnections()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("kafka sink %q: closing: %w", s.name, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka sink %q: closing: %w", s.name, ctx.Err())
	}
}
