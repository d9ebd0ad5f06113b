package helloclient

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hookbridge/hookbridge/sources"
)

// field is a key Convert reads. Hello Client spells keys in several ways,
// so a field is known by its folded key: lower case without underscores
// (SessionID, sessionId and session_id are all "sessionid").
type field int

const (
	fSerialNumber field = iota
	fSessionID
	fType
	fEventType
	fEvent
	fAppointmentTime
	fAppointmentDate
	fCreateTime
	fCreatedAt
	fCreatedTime
	fTime
	fTimestamp
	fStartTime
	fDate
	fChatLogs
	fChatLog
	fConversations
	fSessions
	numFields
)

var fieldKeys = [numFields]string{
	fSerialNumber: "serialnumber", fSessionID: "sessionid",
	fType: "type", fEventType: "eventtype", fEvent: "event",
	fAppointmentTime: "appointmenttime", fAppointmentDate: "appointmentdate",
	fCreateTime: "createtime", fCreatedAt: "createdat", fCreatedTime: "createdtime",
	fTime: "time", fTimestamp: "timestamp", fStartTime: "starttime", fDate: "date",
	fChatLogs: "chatlogs", fChatLog: "chatlog", fConversations: "conversations", fSessions: "sessions",
}

var fieldByKey = func() map[string]field {
	m := make(map[string]field, numFields)
	for f, k := range fieldKeys {
		m[k] = field(f)
	}
	return m
}()

// longestFieldKey bounds the folding of keys that cannot be a field.
var longestFieldKey = func() int {
	n := 0
	for _, k := range fieldKeys {
		n = max(n, len(k))
	}
	return n
}()

// fields are the values of one JSON object's keys that Convert reads. They
// are picked out in one pass over the object, which keeps the object as it
// is rather than copying it under folded keys.
type fields struct {
	value [numFields]any
	key   [numFields]string // the object's key each value came from
	found [numFields]bool
}

// read picks the known fields out of obj. When several keys fold alike
// (Type and type), the least of them wins, so the choice does not depend on
// the map's order.
func (f *fields) read(obj map[string]any) {
	for k, v := range obj {
		f.set(k, v)
	}
}

// set records v as the value of key k if k is a field's key and the least
// key seen so far that folds to it. A key seen again replaces its earlier
// value, as it does in a decoded map.
func (f *fields) set(k string, v any) {
	i, ok := fieldOf(k)
	if !ok || (f.found[i] && f.key[i] < k) {
		return
	}
	f.value[i], f.key[i], f.found[i] = v, k, true
}

// fieldOf returns the field whose key k folds to.
func fieldOf(k string) (field, bool) {
	var buf [32]byte
	folded, ok := foldKey(buf[:0], k)
	if !ok {
		return 0, false
	}
	i, ok := fieldByKey[string(folded)]
	return i, ok
}

// isField reports whether k is one of the fields' keys.
func isField(k string) bool {
	_, ok := fieldOf(k)
	return ok
}

// foldKey appends k to dst lower-cased and without underscores; ok is false
// when k folds to something longer than any field's key.
func foldKey(dst []byte, k string) (folded []byte, ok bool) {
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c >= utf8.RuneSelf:
			// Unicode lower-casing, which can change lengths; rare in keys.
			folded = append(dst[:0], strings.ToLower(strings.ReplaceAll(k, "_", ""))...)
			return folded, len(folded) <= longestFieldKey
		case c == '_':
		case 'A' <= c && c <= 'Z':
			dst = append(dst, c+'a'-'A')
		default:
			dst = append(dst, c)
		}
		if len(dst) > longestFieldKey {
			// Lower-casing never shortens a rune to nothing, so the rest of
			// k cannot bring it back within reach.
			return nil, false
		}
	}
	return dst, true
}

func (f *fields) has(name field) bool { return f.found[name] }

// str returns the first of names that holds a non-empty string or a number.
func (f *fields) str(names ...field) string {
	for _, name := range names {
		if s := sources.ValueString(f.value[name]); s != "" {
			return s
		}
	}
	return ""
}

func (f *fields) chatLogs() ([]any, bool) {
	for _, name := range []field{fChatLogs, fChatLog, fConversations, fSessions} {
		if v, ok := f.value[name].([]any); ok {
			return v, true
		}
	}
	return nil, false
}

func (f *fields) eventTime() time.Time {
	for _, name := range []field{fCreateTime, fCreatedAt, fCreatedTime, fTime, fTimestamp} {
		if t, ok := sources.ParseTime(f.value[name]); ok {
			return t
		}
	}
	return time.Time{}
}
