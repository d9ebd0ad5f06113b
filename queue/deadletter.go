package queue

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/cockroachdb/pebble"

	"github.com/hookbridge/hookbridge/eventcodec"
)

// DeadLetter is one entry of the store's dead-letter list: an event that a
// sink without a dead-letter sink gave up on, or a raw request body that was
// verified but could not be turned into an event.
type DeadLetter struct {
	Key      string    // identifies the entry for Replay
	Sink     string    // the sink that gave up; "" for a rejected request
	From     string    // the sink that had forwarded the event to Sink, if any
	Source   string    // the source that received a rejected request; "" for an event
	Reason   string    // why
	Attempts int       // delivery attempts made
	At       time.Time // when it was dead-lettered
	Event    []byte    // the event (structured JSON); nil for a rejected request
	Raw      []byte    // the rejected request body; nil for an event
}

// Reject keeps a raw request body that could not be converted into an event,
// in the dead-letter list. It is fsync'd before returning.
func (s *Store) Reject(source string, raw []byte, reason string) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	now := s.now()
	if err := s.space.check(now); err != nil {
		return err
	}
	n, err := s.seqs.unique()
	if err != nil {
		return fmt.Errorf("queue: reject: %w", err)
	}
	at := now.UnixNano()
	rec := deadRecord{At: at, Source: source, Reason: reason, Raw: raw}
	if err := s.db.Set(deadKey(at, n), rec.encode(), pebble.Sync); err != nil {
		return fmt.Errorf("queue: reject: %w", err)
	}
	s.deadLetters.Add(1)
	return nil
}

// DeadLetters lists up to limit entries of the dead-letter list, newest
// first; limit <= 0 lists them all.
func (s *Store) DeadLetters(limit int) ([]DeadLetter, error) {
	return s.DeadLettersBefore("", limit)
}

// DeadLettersBefore lists up to limit entries older than the entry with
// key before (which need not exist any more), newest first: the page after
// the one that ended with before. An empty before starts at the newest.
func (s *Store) DeadLettersBefore(before string, limit int) ([]DeadLetter, error) {
	prefix := []byte(prefixDead)
	upper := prefixEnd(prefix)
	if before != "" {
		raw, err := deadKeyOf(before)
		if err != nil {
			return nil, err
		}
		upper = append(append([]byte(nil), prefix...), raw...)
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("queue: dead letters: %w", err)
	}
	var out []DeadLetter
	for iter.Last(); iter.Valid() && (limit <= 0 || len(out) < limit); iter.Prev() {
		key := iter.Key()
		rec, err := decodeDeadRecord(iter.Value())
		if err != nil {
			_ = iter.Close()
			return nil, fmt.Errorf("queue: dead letter %x: %w", key[len(prefixDead):], err)
		}
		out = append(out, rec.deadLetter(key[len(prefixDead):]))
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("queue: dead letters: %w", err)
	}
	return out, nil
}

// deadKeyOf reads a dead letter's key as DeadLetter.Key writes it.
func deadKeyOf(key string) ([]byte, error) {
	raw, err := hex.DecodeString(key)
	if err != nil || len(raw) != deadKeyLen {
		return nil, fmt.Errorf("%w: bad key %q", ErrNotFound, key)
	}
	return raw, nil
}

// deadLetter is rec as listed, under its key (without the prefix).
func (rec deadRecord) deadLetter(key []byte) DeadLetter {
	return DeadLetter{
		Key:      hex.EncodeToString(key),
		Sink:     rec.Sink,
		From:     rec.From,
		Source:   rec.Source,
		Reason:   rec.Reason,
		Attempts: rec.Attempts,
		At:       time.Unix(0, rec.At),
		Event:    rec.Event,
		Raw:      rec.Raw,
	}
}

// DeadLetter returns the entry with key; ErrNotFound when there is none.
func (s *Store) DeadLetter(key string) (DeadLetter, error) {
	raw, err := deadKeyOf(key)
	if err != nil {
		return DeadLetter{}, err
	}
	if err := s.begin(); err != nil {
		return DeadLetter{}, err
	}
	defer s.end()
	v, closer, err := s.db.Get(append([]byte(prefixDead), raw...))
	if errors.Is(err, pebble.ErrNotFound) {
		return DeadLetter{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("queue: dead letter %s: %w", key, err)
	}
	defer closer.Close()
	rec, err := decodeDeadRecord(v)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("queue: dead letter %s: %w", key, err)
	}
	return rec.deadLetter(raw), nil // decoding copied the bodies out of v
}

// Discard removes a dead letter for good (a synced write): an event or a
// rejected request body that is not worth keeping once looked at.
func (s *Store) Discard(key string) error {
	raw, err := deadKeyOf(key)
	if err != nil {
		return err
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	s.replayMu.Lock() // a replay and a discard of one key must not both happen
	defer s.replayMu.Unlock()
	dkey := append([]byte(prefixDead), raw...)
	if _, closer, err := s.db.Get(dkey); errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	} else if err != nil {
		return fmt.Errorf("queue: discard %s: %w", key, err)
	} else {
		_ = closer.Close()
	}
	if err := s.db.Delete(dkey, pebble.Sync); err != nil {
		return fmt.Errorf("queue: discard %s: %w", key, err)
	}
	s.deadLetters.Add(-1)
	return nil
}

// Replay queues a dead-lettered event again for sink (the sink that buried
// it when sink is ""), with its attempts reset, and removes it from the
// dead-letter list, in one synced write.
func (s *Store) Replay(key string, sink string) error {
	raw, err := deadKeyOf(key)
	if err != nil {
		return err
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	s.replayMu.Lock() // two replays of one key must not queue it twice
	defer s.replayMu.Unlock()

	dkey := append([]byte(prefixDead), raw...)
	v, closer, err := s.db.Get(dkey)
	if errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return fmt.Errorf("queue: replay %s: %w", key, err)
	}
	rec, err := decodeDeadRecord(v)
	_ = closer.Close()
	if err != nil {
		return fmt.Errorf("queue: replay %s: %w", key, err)
	}
	if rec.Event == nil {
		return fmt.Errorf("queue: replay %s: a rejected request body (%s) is not an event", key, rec.Reason)
	}
	if sink == "" {
		sink = rec.Sink
	}
	if err := checkSinkName(sink); err != nil {
		return fmt.Errorf("queue: replay %s: %w", key, err)
	}

	body := rec.Event
	pending := pendingRecord{At: s.now().UnixNano(), Body: body}
	switch {
	case rec.From != "" && sink != rec.Sink:
		// A dead letter a dead-letter sink gave up on, sent elsewhere
		// (back to the sink it came from, say): as an ordinary event.
		pending.Body = withDeadLetterExtensions(body, "", Failure{})
	case rec.From != "":
		// Sent again to the dead-letter sink that gave up on it: a
		// forward from the first sink again, with what it was told, so
		// that giving up once more keeps both.
		if ev, err := eventcodec.Decode(body); err == nil {
			from, why := DeadLetterFailure(ev)
			if from == rec.From {
				pending.From, pending.Reason, pending.Status, pending.Answer = from, why.Reason, why.Status, why.Answer
			}
		}
	}
	target := s.sink(sink)
	sp, err := s.seqs.reserve(1, []string{sink})
	if err != nil {
		return fmt.Errorf("queue: replay %s: %w", key, err)
	}
	batch := s.db.NewBatch()
	answered := s.formatFor(batch, pending)
	_ = batch.Set(pendingKey(nil, sink, sp.first), pending.encode(), nil)
	_ = batch.Delete(dkey, nil)
	err = batch.Commit(pebble.Sync)
	_ = batch.Close()
	if err == nil {
		s.events.Add(1)
		s.deadLetters.Add(-1)
		target.addPending(1)
		if answered {
			s.answered.Store(true)
		}
	}
	s.wakeSinks(s.seqs.finish(sp))
	if err != nil {
		return fmt.Errorf("queue: replay %s: %w", key, err)
	}
	return nil
}

// Extensions an event sent to a dead-letter sink carries: the sink that
// gave up on it, and why. The delivery engine sets them on what it
// forwards (SetDeadLetterExtensions); the queues keep them where a dead
// letter is stored.
const (
	ExtDeadLetterSink   = "deadlettersink"
	ExtDeadLetterReason = "deadletterreason"

	// Knative's dispatchers tell a dead-letter sink the same with these:
	// the destination that failed (here the sink's name: a sink's URL can
	// hold a secret), the status code of its last answer, and the start
	// of that answer's body, base64-encoded, at most 1,024 bytes before
	// encoding. The last two only when the destination answered.
	ExtKnativeErrorDest = "knativeerrordest"
	ExtKnativeErrorCode = "knativeerrorcode"
	ExtKnativeErrorData = "knativeerrordata"

	// knativeErrorDataMax is the most of an answer knativeerrordata holds,
	// as in Knative.
	knativeErrorDataMax = 1024
)

// Failure is why a sink gave up on a delivery, as its dead-letter sink is
// told (Forward, and the extensions above).
type Failure struct {
	Reason string // the sink, the attempts made and the last error, in words
	Status int    // the status code of the destination's last answer; 0 without one
	Answer []byte // the start of that answer's body; nil without one
}

// SetDeadLetterExtensions sets the extensions of a dead letter on ev: from
// is the sink that gave up on it and why says why. With from "" it takes
// them off.
func SetDeadLetterExtensions(ev *ce.Event, from string, why Failure) {
	for _, name := range [...]string{ExtDeadLetterSink, ExtDeadLetterReason, ExtKnativeErrorDest, ExtKnativeErrorCode, ExtKnativeErrorData} {
		ev.SetExtension(name, nil)
	}
	if from == "" {
		return
	}
	ev.SetExtension(ExtDeadLetterSink, from)
	ev.SetExtension(ExtDeadLetterReason, why.Reason)
	ev.SetExtension(ExtKnativeErrorDest, from)
	if why.Status > 0 {
		// In digits, as Knative's Kafka dispatcher writes it and as every
		// binary-mode header carries it.
		ev.SetExtension(ExtKnativeErrorCode, strconv.Itoa(why.Status))
	}
	if len(why.Answer) > 0 {
		ev.SetExtension(ExtKnativeErrorData, base64.StdEncoding.EncodeToString(why.Answer[:min(len(why.Answer), knativeErrorDataMax)]))
	}
}

// DeadLetterFailure reads back what SetDeadLetterExtensions set on ev:
// the sink that gave up and why. from is "" when ev carries no
// deadlettersink.
func DeadLetterFailure(ev *ce.Event) (from string, why Failure) {
	exts := ev.Extensions()
	from, _ = exts[ExtDeadLetterSink].(string)
	if from == "" {
		return "", Failure{}
	}
	why.Reason, _ = exts[ExtDeadLetterReason].(string)
	if code, ok := exts[ExtKnativeErrorCode].(string); ok {
		if n, err := strconv.Atoi(code); err == nil && n >= 100 && n <= 599 {
			why.Status = n // what a status can be; anything else is none
		}
	}
	if data, ok := exts[ExtKnativeErrorData].(string); ok {
		why.Answer, _ = base64.StdEncoding.DecodeString(data)
	}
	return from, why
}

// withDeadLetterExtensions is the stored event body with the dead-letter
// extensions set for from and why, or taken off when from is "". A body
// that does not decode as an event is returned as it is.
func withDeadLetterExtensions(body []byte, from string, why Failure) []byte {
	ev, err := eventcodec.Decode(body)
	if err != nil {
		return body
	}
	SetDeadLetterExtensions(ev, from, why)
	out, err := eventcodec.Encode(ev)
	if err != nil {
		return body
	}
	return out
}
