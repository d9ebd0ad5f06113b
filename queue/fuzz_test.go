package queue

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

func FuzzPendingRecord(f *testing.F) {
	for _, r := range []pendingRecord{
		{},
		{At: 1740830400000000000},
		{At: -1, Ref: 42, Attempts: 8, Rewritten: true, LastErr: "HTTP 503", From: "crm", Reason: "8 attempts"},
		{Attempts: 1<<31 - 1, LastErr: "\x00\xff"},
		{At: 7, Body: []byte(`{"id":"x"}`)},
		{Attempts: 2, Rewritten: true, From: "crm", Body: []byte{}},
		{Ref: 3, Shared: true, From: "crm", Reason: "rejected", Status: 422, Answer: []byte(`{"error":"email"}`)},
		{From: "slack", Status: 503, Body: []byte(`{"id":"y"}`)},
	} {
		f.Add(r.encode())
	}
	f.Add([]byte{})
	f.Add([]byte{pendingRecordVersion, 0x80})
	f.Add([]byte{pendingRecordVersion, 2, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodePendingRecord(b)
		if err != nil {
			return
		}
		again, err := decodePendingRecord(r.encode())
		if err != nil {
			t.Fatalf("re-decoding %+v: %v", r, err)
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip changed %+v into %+v", r, again)
		}
		if r.Attempts < 0 {
			t.Fatalf("negative attempts %d", r.Attempts)
		}
		if pendingInline(b) != (r.Body != nil) {
			t.Fatalf("pendingInline = %v for a record with body %q", pendingInline(b), r.Body)
		}
		if r.Body != nil && (r.Shared || r.Ref != 0) {
			t.Fatalf("a record carrying its body also refers to another: %+v", r)
		}
	})
}

func FuzzDeadRecord(f *testing.F) {
	for _, r := range []deadRecord{
		{},
		{At: 5, Attempts: 8, Sink: "crm", From: "slack", Reason: "gave up", Event: []byte(`{"id":"x"}`)},
		{At: 6, Source: "crisp", Reason: "not JSON", Raw: []byte("<html>")},
	} {
		f.Add(r.encode())
	}
	f.Add([]byte{deadRecordVersion, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeDeadRecord(b)
		if err != nil {
			return
		}
		again, err := decodeDeadRecord(r.encode())
		if err != nil {
			t.Fatalf("re-decoding %+v: %v", r, err)
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip changed %+v into %+v", r, again)
		}
	})
}

func FuzzKeys(f *testing.F) {
	f.Add("kafka-events", uint64(1), int64(1740830400000000000), "chat:1:message.send")
	f.Add("a/b", uint64(1<<63), int64(-1), "")
	f.Add("\xff", uint64(0), int64(0), "\x00")
	f.Fuzz(func(t *testing.T, sink string, seq uint64, at int64, id string) {
		if checkSinkName(sink) == nil {
			key := pendingKey(nil, sink, seq)
			gotSink, gotSeq, ok := parsePendingKey(key)
			if !ok || gotSink != sink || gotSeq != seq {
				t.Fatalf("pending key %q parsed as %q %d %v", key, gotSink, gotSeq, ok)
			}
			if !bytes.HasPrefix(key, pendingPrefix(sink)) || bytes.Compare(key, prefixEnd(pendingPrefix(sink))) >= 0 {
				t.Fatalf("pending key %q outside its sink's range", key)
			}
		}
		key := acceptedKey(nil, at, id)
		gotBucket, gotID, ok := splitAcceptedKey(key)
		if !ok || gotBucket != at || string(gotID) != id {
			t.Fatalf("dedup record key %q parsed as %d %q %v", key, gotBucket, gotID, ok)
		}
		// Buckets sort by time, whatever the sign.
		if other := acceptedKey(nil, int64(seq), ""); (bytes.Compare(other, key) < 0) != (int64(seq) < at) && int64(seq) != at {
			t.Fatalf("bucket %d's key %q and bucket %d's %q sort the other way", int64(seq), other, at, key)
		}
		// A bucket holds the times from just after the previous one's last
		// to its own last.
		buckets := dedupBuckets{width: int64(seq%(1<<40)) + 1}
		b := buckets.of(at)
		if last := buckets.last(b); last < at || buckets.of(last) != b {
			t.Fatalf("width %d: %d is in bucket %d, whose last time is %d", buckets.width, at, b, last)
		}
		if b > math.MinInt64/buckets.width && buckets.last(b-1) >= at {
			t.Fatalf("width %d: %d is in bucket %d, but bucket %d ends at %d", buckets.width, at, b, b-1, buckets.last(b-1))
		}
		// Arbitrary bytes must not panic the parsers.
		parsePendingKey([]byte(sink))
		splitAcceptedKey([]byte(id))
		splitLegacyExpiryKey([]byte(id))
	})
}
