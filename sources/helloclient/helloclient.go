package helloclient

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
)

// SignatureHeader carries Hello Client's request signature.
const SignatureHeader = "X-Webhook-Signature"

// Source verifies and converts Hello Client webhooks.
type Source struct {
	secret    []byte
	tolerance time.Duration
}

var successReply = sources.Reply{Status: http.StatusOK, ContentType: "application/json", Body: []byte(`{"status":"success"}`)}

// SuccessReply is the answer Hello Client expects: {"status":"success"}.
func (s *Source) SuccessReply() sources.Reply { return successReply }

// Verify checks X-Webhook-Signature over the raw body, then over its compact
// JSON form.
func (s *Source) Verify(req *sources.Request) error {
	header := req.Header.Get(SignatureHeader)
	if header == "" {
		return fmt.Errorf("%w: no %s header", sources.ErrMissingSignature, SignatureHeader)
	}
	ts, sigs, err := ParseSignature(header)
	if err != nil {
		return err
	}
	if err := sources.CheckUnixSeconds(ts, req.ReceivedAt, s.tolerance); err != nil {
		return fmt.Errorf("%s t=%d: %w", SignatureHeader, ts, err)
	}
	prefix := []byte(strconv.FormatInt(ts, 10) + ".")
	mac := sources.HMAC(sha256.New, s.secret, prefix, req.Body)
	if anyEqual(sigs, mac) {
		return nil
	}
	for _, form := range sources.OtherJSONForms(req.Body) {
		if anyEqual(sigs, sources.HMAC(sha256.New, s.secret, prefix, form)) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s v1 is not the HMAC-SHA256 of the body", sources.ErrSignatureMismatch, SignatureHeader)
}

func anyEqual(sigs []string, mac []byte) bool {
	ok := false
	for _, sig := range sigs {
		// Check every candidate so timing does not depend on which matched.
		if sources.EqualHex(sig, mac) {
			ok = true
		}
	}
	return ok
}

// ParseSignature splits "t=<unix>,v1=<hex>[,v1=<hex>...]".
func ParseSignature(header string) (ts int64, v1 []string, err error) {
	haveT := false
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			n, perr := strconv.ParseInt(v, 10, 64)
			if perr != nil || n <= 0 {
				return 0, nil, fmt.Errorf("%w: t=%q is not a unix time", sources.ErrMalformedSignature, v)
			}
			ts, haveT = n, true
		case "v1":
			if v != "" {
				v1 = append(v1, v)
			}
		}
	}
	if !haveT {
		return 0, nil, fmt.Errorf("%w: no t= in %s", sources.ErrMalformedSignature, SignatureHeader)
	}
	if len(v1) == 0 {
		return 0, nil, fmt.Errorf("%w: no v1= in %s", sources.ErrMissingSignature, SignatureHeader)
	}
	return ts, v1, nil
}

// Sign sets X-Webhook-Signature as Hello Client would for req.Body at req.ReceivedAt.
func (s *Source) Sign(req *sources.Request) error {
	ts := strconv.FormatInt(req.ReceivedAt.Unix(), 10)
	mac := sources.HMAC(sha256.New, s.secret, []byte(ts+"."), req.Body)
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set(SignatureHeader, fmt.Sprintf("t=%s,v1=%x", ts, mac))
	req.Header.Set("Content-Type", "application/json")
	return nil
}

// Convert makes one event for a lead or appointment and one per
// conversation for a chat-log push.
func (s *Source) Convert(req *sources.Request) ([]*event.Event, error) {
	var top fields
	if err := sources.DecodeFields(req.Body, isField, top.set); err != nil {
		return nil, err
	}
	serial := top.str(fSerialNumber)
	if logs, ok := top.chatLogs(); ok {
		return s.convertChatLog(serial, &top, logs)
	}
	kind := strings.ToLower(top.str(fType, fEventType, fEvent))
	if kind == "" {
		kind = "lead"
		if top.has(fAppointmentTime) || top.has(fAppointmentDate) {
			kind = "appointment"
		}
	}
	ev := sources.NewEvent(
		sources.SHA256Hex(req.Body),
		"com.helloclient."+sources.TypeSuffix(kind),
		source(serial),
		subject(top.str(fSessionID)),
		top.eventTime(),
		req.Body,
	)
	return []*event.Event{ev}, nil
}

func (s *Source) convertChatLog(serial string, top *fields, logs []any) ([]*event.Event, error) {
	out := make([]*event.Event, 0, len(logs))
	for i, item := range logs {
		conv, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: chat log entry %d is not an object", sources.ErrNotJSON, i)
		}
		var cf fields
		cf.read(conv)
		bot := serial
		if own := cf.str(fSerialNumber); own != "" {
			bot = own
		}
		session := cf.str(fSessionID)
		start := cf.str(fStartTime, fCreateTime, fTime)
		data, err := json.Marshal(conversationData{SerialNumber: bot, Date: top.value[fDate], Conversation: conv})
		if err != nil {
			return nil, fmt.Errorf("encoding conversation %d: %w", i, err)
		}
		t, _ := sources.ParseTime(cf.value[fStartTime])
		id := sources.SHA256Hex([]byte(bot), []byte{0}, []byte(session), []byte{0}, []byte(start))
		if start == "" {
			// Without a start time, chatbot and session name no single
			// conversation: two of one session (or a later push of the
			// same session) would share the id and all but one be dropped
			// as duplicates. The conversation's own content tells them
			// apart, and stays the same in a retry of the push.
			canonical, err := json.Marshal(conv) // keys sorted
			if err != nil {
				return nil, fmt.Errorf("encoding conversation %d: %w", i, err)
			}
			id = sources.SHA256Hex([]byte(bot), []byte{0}, []byte(session), []byte{0}, canonical)
		}
		ev := sources.NewEvent(id, "com.helloclient.chatlog", source(bot), subject(session), t, data)
		out = append(out, ev)
	}
	return out, nil
}

// conversationData is the payload of one com.helloclient.chatlog event: the
// conversation as Hello Client sent it, with the chatbot it belongs to.
type conversationData struct {
	SerialNumber string         `json:"SerialNumber"`
	Date         any            `json:"Date,omitempty"`
	Conversation map[string]any `json:"Conversation"`
}

func source(serial string) string {
	if serial == "" {
		serial = "unknown"
	}
	// Escaped, so a serial with spaces or '%' still makes a valid URI
	// that reads back unchanged from the queue.
	return "https://helloclient.com/chatbots/" + url.PathEscape(serial)
}

func subject(session string) string {
	if session == "" {
		return ""
	}
	return "sessions/" + session
}
