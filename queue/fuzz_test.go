package queue

import (
	"bytes"
	"reflect"
	"testing"
)

func FuzzPendingRecord(f *testing.F) {
	for _, r := range []pendingRecord{
		{},
		{At: 1740830400000000000},
		{At: -1, Ref: 42, Attempts: 8, Rewritten: true, LastErr: "HTTP 503", From: "crm", Reason: "8 attempts"},
		{Attempts: 1<<31 - 1, LastErr: "\x00\xff"},
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
		key := expiryKey(nil, at, id)
		gotAt, gotID, ok := parseExpiryKey(key)
		if !ok || gotAt != at || gotID != id {
			t.Fatalf("expiry key %q parsed as %d %q %v", key, gotAt, gotID, ok)
		}
		// Arbitrary bytes must not panic the parsers.
		parsePendingKey([]byte(sink))
		parseExpiryKey([]byte(id))
	})
}
