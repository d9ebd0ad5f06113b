package sinks

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
)

// ForJSONFormat returns ev as the CloudEvents JSON event format must carry
// it to stay one valid UTF-8 JSON document: JSON data as a JSON value, and
// data that is not valid JSON, or not UTF-8 (a provider's payload may hold
// such bytes inside its strings, which json.Valid lets pass), as
// data_base64, so that nothing of it is lost; JSON data flagged base64
// goes as JSON, other UTF-8 text as the event's flag says. It returns ev itself when that is how it goes already,
// else a shallow copy differing only in its DataBase64 flag (the context is shared, read only). Every sink that
// writes structured events (the file, http and kafka sinks) writes this.
func ForJSONFormat(ev *event.Event) *event.Event {
	data := ev.Data()
	if len(data) == 0 {
		return ev
	}
	base64 := ev.DataBase64 // other text: as the event says
	written, read := DataIsJSON(ev.DataContentType())
	switch {
	case written && read:
		base64 = !json.Valid(data) || !utf8.Valid(data)
	case written:
		// A JSON type in unusual case: readers would expect a string
		// where the writer puts a JSON value. base64 reads back alike.
		base64 = true
	case !utf8.Valid(data):
		base64 = true
	}
	if base64 == ev.DataBase64 {
		return ev
	}
	out := *ev
	out.DataBase64 = base64
	return &out
}

// DataIsJSON reports whether sdk-go's JSON event format takes data of this
// content type as a JSON value (rather than a string) when it writes an event
// and when it reads one. The writer compares the media type in lower case, the
// reader as written; only where both agree may data go as a JSON value.
func DataIsJSON(contentType string) (written, read bool) {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	return jsonMediaType(strings.ToLower(mt)), jsonMediaType(mt)
}

func jsonMediaType(mt string) bool {
	switch mt {
	case "", event.ApplicationJSON, event.TextJSON, event.ApplicationCloudEventsJSON, event.ApplicationCloudEventsBatchJSON:
		return true
	}
	return false
}
