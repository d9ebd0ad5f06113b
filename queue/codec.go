package queue

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/hookbridge/hookbridge/internal/wire"
)

// Key prefixes. Every prefix ends in '/', so prefixEnd never overflows.
const (
	prefixEvent    = "e/"
	prefixRefs     = "r/"
	prefixPending  = "q/"
	prefixDead     = "x/"
	prefixAccepted = "y/" // after every family but the dead letters: see storeFormat

	// Format 1 kept a dedup record per id and an expiry index beside it;
	// formats 2 and 3 kept bucketed dedup records keyed by the id itself.
	// Open moves them into y/ (see upgrade).
	legacyPrefixDedup      = "d/"
	legacyPrefixExpiry     = "t/"
	legacyPrefixAccepted   = "a/" // format 2
	legacyPrefixAcceptedV3 = "z/" // format 3

	keyFormat      = "m/format"
	keySeqTerm     = "m/seq"
	keyBucketWidth = "m/dedup-bucket" // nanoseconds each bucket of dedup records spans
)

// storeFormat is written to m/format. Open upgrades a store of format 1,
// 2 or 3, opens one of format 4 or 5, and refuses any other.
//
// Since format 3 the body of an event that goes to one sink is kept inside
// its pending record, and the dedup records sort after the pending ones. A
// flush then holds, for a single-sink route, one run of pending records in
// seq order and one bucket of dedup records: its table no longer spans the
// backlog in between, which every compaction into the level below
// otherwise rewrote (in format 2, a/ ids, e/ bodies and q/ records put the
// whole backlog of bodies inside every flush's key range).
//
// Format 4 keys a dedup record by a digest of the id (see idDigest), not
// the id: a provider's ids with their source run to 100 bytes and more,
// and the records of the current bucket, written at random places in it,
// are what every compaction of fresh data into the level below rewrites.
//
// Format 5 adds pending records that carry a destination's answer
// (pendingFlagAnswered), which a bridge that knows only format 4 would
// take for damaged and lose. A store stays at format 4 until the first
// such record is written, in the same batch as m/format = 5: rolling back
// to an older bridge works until then, and is refused after, rather than
// losing the forward.
const (
	storeFormat    = 4
	answeredFormat = 5
)

// Record versions: the first byte of each encoded value.
const (
	pendingRecordVersion = 1
	deadRecordVersion    = 1
	eventRecordVersion   = 1
)

// deadKeyLen is the length of a dead letter's key after its prefix.
const deadKeyLen = 16

var errCorrupt = errors.New("queue: corrupt record")

func appendUint64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func eventKey(b []byte, seq uint64) []byte {
	return appendUint64(append(b[:0], prefixEvent...), seq)
}

func refsKey(b []byte, seq uint64) []byte {
	return appendUint64(append(b[:0], prefixRefs...), seq)
}

// pendingPrefix is the prefix of every pending record of sink.
func pendingPrefix(sink string) []byte {
	b := make([]byte, 0, len(prefixPending)+len(sink)+1)
	return append(append(append(b, prefixPending...), sink...), 0)
}

func pendingKey(b []byte, sink string, seq uint64) []byte {
	b = append(append(append(b[:0], prefixPending...), sink...), 0)
	return appendUint64(b, seq)
}

// parsePendingKey splits q/<sink>\x00<seq>.
func parsePendingKey(key []byte) (sink string, seq uint64, ok bool) {
	if len(key) < len(prefixPending)+1+8 || string(key[:len(prefixPending)]) != prefixPending {
		return "", 0, false
	}
	nameEnd := len(key) - 9
	if key[nameEnd] != 0 {
		return "", 0, false
	}
	return string(key[len(prefixPending):nameEnd]), binary.BigEndian.Uint64(key[nameEnd+1:]), true
}

// idDigest is what the store keeps of an accepted event id: the first 16
// bytes of its SHA-256. Two ids share a digest with a chance of about
// n²/2^129 among n ids, and finding two that do takes about 2^64 hashes,
// so no sender can make one event pass for another.
type idDigest [16]byte

func digestOf(id string) idDigest {
	sum := sha256.Sum256([]byte(id))
	return idDigest(sum[:16])
}

// acceptedKey is the dedup record of an id (its digest) accepted in the
// given time bucket (see dedupBuckets): y/<bucket><digest>, buckets in
// time order. An empty digest gives the bucket's lower bound.
func acceptedKey[T ~string | ~[]byte](b []byte, bucket int64, id T) []byte {
	b = appendUint64(append(b[:0], prefixAccepted...), uint64(bucket)^1<<63)
	return append(b, id...)
}

// splitAcceptedKey splits y/<bucket><digest>; the digest shares key's memory.
func splitAcceptedKey(key []byte) (bucket int64, id []byte, ok bool) {
	v, id, ok := splitUint64Key(key, prefixAccepted)
	return int64(v ^ 1<<63), id, ok
}

// splitLegacyExpiryKey splits a format-1 expiry entry, t/<time><id>; id
// shares key's memory.
func splitLegacyExpiryKey(key []byte) (at int64, id []byte, ok bool) {
	v, id, ok := splitUint64Key(key, legacyPrefixExpiry)
	return int64(v), id, ok
}

// splitUint64Key splits <prefix><big-endian uint64><rest>; rest shares
// key's memory.
func splitUint64Key(key []byte, prefix string) (v uint64, rest []byte, ok bool) {
	if len(key) < len(prefix)+8 || string(key[:len(prefix)]) != prefix {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(key[len(prefix):]), key[len(prefix)+8:], true
}

// dedupBuckets cuts time into buckets of one width: the dedup records of
// the ids accepted within one bucket share a key range, so a bucket that
// has left the window goes with one range deletion.
type dedupBuckets struct {
	width int64 // nanoseconds, > 0
}

// of is the bucket that holds time at (unix nanoseconds).
func (b dedupBuckets) of(at int64) int64 {
	q := at / b.width
	if at%b.width < 0 {
		q--
	}
	return q
}

// last is the latest time bucket n holds.
func (b dedupBuckets) last(n int64) int64 {
	if n >= math.MaxInt64/b.width {
		return math.MaxInt64
	}
	return (n+1)*b.width - 1
}

// deadKey orders dead letters by burial time; n makes the key unique.
func deadKey(at int64, n uint64) []byte {
	b := make([]byte, 0, len(prefixDead)+deadKeyLen)
	return appendUint64(appendUint64(append(b, prefixDead...), uint64(at)), n)
}

// prefixEnd is the smallest key greater than every key starting with prefix.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	end[len(end)-1]++
	return end
}

// Flags of a pending record.
const (
	// pendingFlagRewritten marks a record that has been written more than
	// once: it must be removed with Delete, not SingleDelete.
	pendingFlagRewritten = 1 << iota
	// pendingFlagShared marks a record whose event body is shared with
	// other pending records (counted in r/<seq>); without it the record
	// holds the only reference and settling it needs no count lookup.
	pendingFlagShared

	// pendingFlagInline marks a record that carries its event's body (the
	// event went to this sink alone); there is no e/<seq> record for it.
	pendingFlagInline

	// pendingFlagAnswered marks a dead-letter forward whose sink's
	// destination answered: the record holds the status and the start of
	// the answer, after the reason.
	pendingFlagAnswered

	pendingFlagsKnown = pendingFlagRewritten | pendingFlagShared | pendingFlagInline | pendingFlagAnswered
)

// pendingRecord is the value of q/<sink>\x00<seq>.
type pendingRecord struct {
	At        int64  // when the event was accepted, unix nanoseconds
	Ref       uint64 // seq of the event body when it is not the record's own seq (a forward); 0 otherwise
	Attempts  int    // delivery attempts made so far
	Rewritten bool   // the record has been overwritten since it was first written
	Shared    bool   // the event body has (or had) more than one pending record
	LastErr   string // error of the last attempt
	From      string // for a dead-letter forward: the sink that gave up
	Reason    string // for a dead-letter forward: why it gave up
	Status    int    // for a dead-letter forward: the status of the last answer, when there was one
	Answer    []byte // for a dead-letter forward: the start of that answer
	Body      []byte // the event's body when the record carries it (inline); nil otherwise
}

func (r pendingRecord) encode() []byte {
	return append(r.appendHeader(make([]byte, 0, r.headerCap()+len(r.Body))), r.Body...)
}

// headerCap bounds the length of appendHeader's output.
func (r pendingRecord) headerCap() int {
	return 1 + 5*binary.MaxVarintLen64 + 1 + 4*binary.MaxVarintLen32 + len(r.LastErr) + len(r.From) + len(r.Reason) + len(r.Answer)
}

// appendHeader appends the encoded record up to its body: an inline
// record's encoding is the header followed by the body's bytes, which the
// header's last field counts.
func (r pendingRecord) appendHeader(b []byte) []byte {
	b = append(b, pendingRecordVersion)
	var flags uint64
	if r.Rewritten {
		flags |= pendingFlagRewritten
	}
	if r.Shared {
		flags |= pendingFlagShared
	}
	if r.Body != nil {
		flags |= pendingFlagInline
	}
	answered := r.Status != 0 || len(r.Answer) > 0
	if answered {
		flags |= pendingFlagAnswered
	}
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendVarint(b, r.At)
	b = binary.AppendUvarint(b, r.Ref)
	b = binary.AppendUvarint(b, uint64(r.Attempts))
	b = wire.AppendString(b, r.LastErr)
	b = wire.AppendString(b, r.From)
	b = wire.AppendString(b, r.Reason)
	if answered {
		b = binary.AppendUvarint(b, uint64(r.Status))
		b = wire.AppendString(b, r.Answer)
	}
	if r.Body != nil {
		b = binary.AppendUvarint(b, uint64(len(r.Body)))
	}
	return b
}

func decodePendingRecord(b []byte) (pendingRecord, error) {
	var r pendingRecord
	if len(b) == 0 || b[0] != pendingRecordVersion {
		return r, fmt.Errorf("%w: pending record version", errCorrupt)
	}
	d := wire.NewReader(b[1:], errCorrupt)
	flags := d.Uvarint()
	r.At = d.Varint()
	r.Ref = d.Uvarint()
	r.Attempts = d.Count()
	r.LastErr = d.String()
	r.From = d.String()
	r.Reason = d.String()
	if flags&pendingFlagAnswered != 0 {
		r.Status = d.Count()
		r.Answer = d.Bytes()
	}
	if flags&pendingFlagInline != 0 {
		r.Body = d.Field()
	}
	if err := d.Finish(); err != nil {
		return pendingRecord{}, fmt.Errorf("pending record: %w", err)
	}
	if flags&^pendingFlagsKnown != 0 {
		return pendingRecord{}, fmt.Errorf("%w: pending record flags %#x", errCorrupt, flags)
	}
	if r.Body != nil && (flags&pendingFlagShared != 0 || r.Ref != 0) {
		return pendingRecord{}, fmt.Errorf("%w: pending record carries its body and refers to another", errCorrupt)
	}
	r.Rewritten = flags&pendingFlagRewritten != 0
	r.Shared = flags&pendingFlagShared != 0
	return r, nil
}

// pendingInline reports whether an encoded pending record carries its body,
// without decoding it.
func pendingInline(v []byte) bool {
	if len(v) < 2 || v[0] != pendingRecordVersion {
		return false
	}
	flags, n := binary.Uvarint(v[1:])
	return n > 0 && flags&pendingFlagInline != 0
}

// deadRecord is the value of x/<time><n>.
type deadRecord struct {
	At       int64 // when it was dead-lettered, unix nanoseconds
	Attempts int
	Sink     string // the sink that gave up; "" for a rejected request
	From     string // the sink that forwarded it to Sink, if any
	Source   string // the source that received a rejected request
	Reason   string
	Event    []byte // the event (structured JSON); nil for a rejected request
	Raw      []byte // the raw request body of a rejected request
}

func (r deadRecord) encode() []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+6*binary.MaxVarintLen32+
		len(r.Sink)+len(r.From)+len(r.Source)+len(r.Reason)+len(r.Event)+len(r.Raw))
	b = append(b, deadRecordVersion)
	b = binary.AppendVarint(b, r.At)
	b = binary.AppendUvarint(b, uint64(r.Attempts))
	b = wire.AppendString(b, r.Sink)
	b = wire.AppendString(b, r.From)
	b = wire.AppendString(b, r.Source)
	b = wire.AppendString(b, r.Reason)
	b = wire.AppendString(b, r.Event)
	return wire.AppendString(b, r.Raw)
}

func decodeDeadRecord(b []byte) (deadRecord, error) {
	var r deadRecord
	if len(b) == 0 || b[0] != deadRecordVersion {
		return r, fmt.Errorf("%w: dead letter version", errCorrupt)
	}
	d := wire.NewReader(b[1:], errCorrupt)
	r.At = d.Varint()
	r.Attempts = d.Count()
	r.Sink = d.String()
	r.From = d.String()
	r.Source = d.String()
	r.Reason = d.String()
	r.Event = d.Bytes()
	r.Raw = d.Bytes()
	if err := d.Finish(); err != nil {
		return deadRecord{}, fmt.Errorf("dead letter: %w", err)
	}
	return r, nil
}

// decodeEvent returns the body of an e/<seq> value, sharing its memory.
func decodeEvent(b []byte) ([]byte, error) {
	if len(b) == 0 || b[0] != eventRecordVersion {
		return nil, fmt.Errorf("%w: event record version", errCorrupt)
	}
	return b[1:], nil
}
