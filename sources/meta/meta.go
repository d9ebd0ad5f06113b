package meta

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sources"
)

// The header Meta signs every event notification with, and the legacy
// SHA-1 one, which is not accepted.
const (
	SignatureHeader       = "X-Hub-Signature-256"
	LegacySignatureHeader = "X-Hub-Signature"
)

// The query parameters of Meta's verification request.
const (
	ModeParam        = "hub.mode"
	ChallengeParam   = "hub.challenge"
	VerifyTokenParam = "hub.verify_token"
)

const (
	signaturePrefix = "sha256="
	subscribeMode   = "subscribe"
	// GraphURL is the base of every event's source: the Graph API address
	// of the account, Page or app the entry is about.
	GraphURL = "https://graph.facebook.com"
)

// The lists an entry holds its updates in: changes for Graph objects
// (WhatsApp Business accounts among them), messaging for Messenger and
// Instagram messaging, and standby for messages of a conversation another
// app owns (Messenger's handover protocol).
const (
	listChanges   = "changes"
	listMessaging = "messaging"
	listStandby   = "standby"
)

var itemLists = []string{listChanges, listMessaging, listStandby}

// Source verifies and converts Meta's Graph API webhooks.
type Source struct {
	verifyToken string
	keys        [][]byte
}

// HandshakeMethod is GET: Meta verifies the endpoint with one.
func (s *Source) HandshakeMethod() string { return http.MethodGet }

// IsHandshake reports whether req is Meta's verification request: a GET
// with any of the hub.* parameters.
func (s *Source) IsHandshake(req *sources.Request) bool {
	if req.Method != http.MethodGet {
		return false
	}
	for _, p := range []string{ModeParam, ChallengeParam, VerifyTokenParam} {
		if req.Query.Has(p) {
			return true
		}
	}
	return false
}

// Handshake answers the verification request with hub.challenge as plain
// text when hub.verify_token matches verify_token and hub.mode is subscribe.
func (s *Source) Handshake(req *sources.Request) (sources.Reply, error) {
	token := req.Query.Get(VerifyTokenParam)
	if token == "" {
		return sources.Reply{}, fmt.Errorf("%w: no %s in the verification request", sources.ErrBadKey, VerifyTokenParam)
	}
	if !sources.EqualSecret(token, s.verifyToken) {
		return sources.Reply{}, fmt.Errorf("%w: %s does not match verify_token", sources.ErrBadKey, VerifyTokenParam)
	}
	if mode := req.Query.Get(ModeParam); mode != subscribeMode {
		return sources.Reply{}, fmt.Errorf("verification request with %s %q; Meta sends %q", ModeParam, mode, subscribeMode)
	}
	challenge := req.Query.Get(ChallengeParam)
	if challenge == "" {
		return sources.Reply{}, fmt.Errorf("verification request without %s", ChallengeParam)
	}
	return sources.Reply{
		Status:      http.StatusOK,
		ContentType: "text/plain; charset=utf-8",
		Body:        []byte(challenge),
	}, nil
}

// MakeHandshake builds the verification request Meta sends when the
// callback URL is saved in the App Dashboard, for `bridge send`.
func (s *Source) MakeHandshake(now time.Time) (*sources.Request, error) {
	q := url.Values{
		ModeParam:        {subscribeMode},
		ChallengeParam:   {strconv.FormatInt(1e9+now.UnixNano()%1e9, 10)},
		VerifyTokenParam: {s.verifyToken},
	}
	return &sources.Request{Method: http.MethodGet, Header: http.Header{}, Query: q, ReceivedAt: now}, nil
}

// Verify checks X-Hub-Signature-256 against the HMAC-SHA256 of the raw body
// under every configured app secret.
func (s *Source) Verify(req *sources.Request) error {
	if req.Method != http.MethodPost {
		return fmt.Errorf("%w: %s (Meta POSTs event notifications; a GET must be a verification request)", sources.ErrMethodNotAllowed, req.Method)
	}
	header := strings.TrimSpace(req.Header.Get(SignatureHeader))
	if header == "" {
		if req.Header.Get(LegacySignatureHeader) != "" {
			return fmt.Errorf("%w: only the SHA-1 %s, which is not accepted; Meta sends %s with every notification", sources.ErrMissingSignature, LegacySignatureHeader, SignatureHeader)
		}
		return fmt.Errorf("%w: no %s header", sources.ErrMissingSignature, SignatureHeader)
	}
	return sources.CheckSHA256Signature(SignatureHeader, header, signaturePrefix, s.keys, req.Body)
}

// Sign sets X-Hub-Signature-256 under the first app secret, as Meta signs a
// notification.
func (s *Source) Sign(req *sources.Request) error {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(SignatureHeader, signaturePrefix+hex.EncodeToString(sources.HMAC(sha256.New, s.keys[0], req.Body)))
	return nil
}

// Convert makes one CloudEvent of every update in the notification: each
// element of an entry's changes, messaging or standby list.
func (s *Source) Convert(req *sources.Request) ([]*event.Event, error) {
	var valid map[string]json.RawMessage
	if err := sources.DecodeObject(req.Body, &valid); err != nil {
		return nil, err
	}
	top, _ := decodeMembers(bytes.TrimLeft(req.Body, " \t\r\n"))
	var object string
	if err := json.Unmarshal(top.get("object"), &object); err != nil || strings.TrimSpace(object) == "" {
		return nil, errors.New(`the notification has no "object" string (whatsapp_business_account, page, instagram, ...)`)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(top.get("entry"), &entries); err != nil || entries == nil {
		return nil, errors.New(`the notification has no "entry" array`)
	}
	if len(entries) == 0 {
		return nil, errors.New(`the notification's "entry" array is empty`)
	}
	var out []*event.Event
	for i, raw := range entries {
		evs, err := convertEntry(top, object, raw)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out = append(out, evs...)
	}
	if len(out) == 0 {
		return nil, errors.New("the notification holds no update: every entry's lists are empty")
	}
	return out, nil
}

// entryInfo is what every update of one entry shares.
type entryInfo struct {
	top     members
	object  string
	members members
	id      string
	time    time.Time
}

func convertEntry(top members, object string, raw json.RawMessage) ([]*event.Event, error) {
	fields, ok := decodeMembers(raw)
	if !ok {
		return nil, errors.New("not an object")
	}
	e := &entryInfo{top: top, object: object, members: fields}
	if v, err := decodeAny(fields.get("id")); err == nil {
		e.id = text(v)
	}
	if v, err := decodeAny(fields.get("time")); err == nil {
		e.time, _ = sources.ParseTime(v)
	}
	var out []*event.Event
	known := false
	for _, list := range itemLists {
		rawList := fields.get(list)
		if rawList == nil {
			continue
		}
		known = true
		var items []json.RawMessage
		if err := json.Unmarshal(rawList, &items); err != nil {
			return nil, fmt.Errorf("%s is not an array", list)
		}
		for j, rawItem := range items {
			parts := []json.RawMessage{rawItem}
			if list == listChanges {
				var err error
				if parts, err = splitChange(rawItem); err != nil {
					return nil, fmt.Errorf("%s %d: %w", list, j, err)
				}
			}
			for _, part := range parts {
				ev, err := e.convertItem(list, part)
				if err != nil {
					return nil, fmt.Errorf("%s %d: %w", list, j, err)
				}
				out = append(out, ev)
			}
		}
	}
	if !known {
		// A list this source does not know: the whole entry is one event,
		// so nothing Meta sent is dropped.
		ev, err := e.convertWhole(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// splitChange makes one change of each message and each status a WhatsApp
// change value holds, when it holds more than one: each keeps the value's
// other members (metadata, and the contacts of that message's sender), so
// that every message and status is an event with its own id (its wamid),
// and a retry Meta batches otherwise is still deduplicated item by item.
// Any other change is returned as it is.
func splitChange(raw json.RawMessage) ([]json.RawMessage, error) {
	change, ok := decodeMembers(raw)
	if !ok {
		return []json.RawMessage{raw}, nil
	}
	value, ok := decodeMembers(change.get("value"))
	if !ok {
		return []json.RawMessage{raw}, nil
	}
	var messages, statuses []json.RawMessage
	_ = json.Unmarshal(value.get("messages"), &messages)
	_ = json.Unmarshal(value.get("statuses"), &statuses)
	if len(messages)+len(statuses) <= 1 {
		return []json.RawMessage{raw}, nil
	}
	var contacts []json.RawMessage
	_ = json.Unmarshal(value.get("contacts"), &contacts)
	one := func(list string, item json.RawMessage) (json.RawMessage, error) {
		v := make(members, 0, len(value))
		for _, m := range value {
			switch m.key {
			case "messages", "statuses":
				if m.key == list {
					v = append(v, member{list, wrap(item)})
				}
				continue
			case "contacts":
				if list != "messages" {
					continue
				}
				if c := senderContacts(contacts, item); c != nil {
					v = append(v, member{m.key, c})
				}
				continue
			}
			v = append(v, m)
		}
		vb, err := v.encode()
		if err != nil {
			return nil, err
		}
		c := make(members, len(change))
		for i, m := range change {
			if m.key == "value" {
				m.value = vb
			}
			c[i] = m
		}
		return c.encode()
	}
	out := make([]json.RawMessage, 0, len(messages)+len(statuses))
	for _, list := range []struct {
		name  string
		items []json.RawMessage
	}{{"messages", messages}, {"statuses", statuses}} {
		for _, item := range list.items {
			b, err := one(list.name, item)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
	}
	return out, nil
}

// senderContacts are the contacts whose wa_id is the message's sender
// (from), as a JSON array; all of them when none is, nil when there are
// none.
func senderContacts(contacts []json.RawMessage, message json.RawMessage) json.RawMessage {
	if len(contacts) == 0 {
		return nil
	}
	var msg struct {
		From string `json:"from"`
	}
	_ = json.Unmarshal(message, &msg)
	var mine []json.RawMessage
	for _, c := range contacts {
		var contact struct {
			WaID string `json:"wa_id"`
		}
		if json.Unmarshal(c, &contact) == nil && msg.From != "" && contact.WaID == msg.From {
			mine = append(mine, c)
		}
	}
	if len(mine) == 0 {
		mine = contacts
	}
	b, err := json.Marshal(mine)
	if err != nil {
		return nil
	}
	return b
}

// convertItem makes the event of one element of an entry's list.
func (e *entryInfo) convertItem(list string, raw json.RawMessage) (*event.Event, error) {
	v, err := decodeAny(raw)
	if err != nil {
		return nil, err
	}
	item, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not an object")
	}
	var typ, id, subject string
	var t time.Time
	if list == listChanges {
		typ = e.object + "." + sources.TypeSuffix(sources.String(item, "field"))
		id, subject, t = changeFacts(item)
	} else {
		kind := messagingKind(item)
		typ = e.object + "." + kind
		if list == listStandby {
			typ = e.object + ".standby." + kind
		}
		id, subject, t = e.messagingFacts(list, kind, item)
	}
	if id == "" {
		canon, err := canonical(item)
		if err != nil {
			return nil, err
		}
		id = sources.SHA256Hex([]byte(e.id), []byte{0}, []byte(list), []byte{0}, canon)
	}
	if t.IsZero() {
		t = e.time
	}
	data, err := e.reduced(list, raw)
	if err != nil {
		return nil, err
	}
	return sources.NewEvent(id, "com.meta."+sources.TypeSuffix(typ), e.source(), subject, t, data), nil
}

// convertWhole makes one event of an entry that holds no list this source
// knows: type com.meta.<object>.unknown, id the SHA-256 of the entry id and
// the entry's canonical JSON, data the notification with that entry alone.
func (e *entryInfo) convertWhole(raw json.RawMessage) (*event.Event, error) {
	v, err := decodeAny(raw)
	if err != nil {
		return nil, err
	}
	canon, err := canonical(v)
	if err != nil {
		return nil, err
	}
	data, err := e.envelope(raw)
	if err != nil {
		return nil, err
	}
	id := sources.SHA256Hex([]byte(e.id), []byte{0}, []byte("entry"), []byte{0}, canon)
	return sources.NewEvent(id, "com.meta."+sources.TypeSuffix(e.object+".unknown"), e.source(), "", e.time, data), nil
}

func (e *entryInfo) source() string {
	if e.id == "" {
		return GraphURL
	}
	return GraphURL + "/" + url.PathEscape(e.id)
}

// changeFacts reads the id, subject and time of a change from a WhatsApp
// value (messages, statuses, contacts); other changes carry none of these.
// The id is the message's wamid when the value holds exactly one message,
// or "<wamid>:<status>" when it holds exactly one status; else "".
func changeFacts(change map[string]any) (id, subject string, t time.Time) {
	value, _ := change["value"].(map[string]any)
	if value == nil {
		return "", "", time.Time{}
	}
	messages, _ := value["messages"].([]any)
	statuses, _ := value["statuses"].([]any)
	first := func(list []any) map[string]any {
		if len(list) == 0 {
			return nil
		}
		m, _ := list[0].(map[string]any)
		return m
	}
	msg, status := first(messages), first(statuses)
	switch {
	case len(messages) == 1 && len(statuses) == 0 && msg != nil:
		id = text(msg["id"])
	case len(statuses) == 1 && len(messages) == 0 && status != nil:
		if wamid, st := text(status["id"]), text(status["status"]); wamid != "" && st != "" {
			id = wamid + ":" + st
		}
	}
	if contact := first(asList(value["contacts"])); contact != nil {
		subject = text(contact["wa_id"])
	}
	if subject == "" && msg != nil {
		subject = text(msg["from"])
	}
	if subject == "" && status != nil {
		subject = text(status["recipient_id"])
	}
	switch {
	case msg != nil:
		t, _ = sources.ParseTime(msg["timestamp"])
	case status != nil:
		t, _ = sources.ParseTime(status["timestamp"])
	}
	return id, subject, t
}

// messagingKinds are the keys that name a messaging item's kind, in the
// order they are looked for (a postback may carry a referral too).
var messagingKinds = []string{
	"message", "postback", "reaction", "read", "delivery", "optin", "referral",
	"message_edit", "account_linking", "policy_enforcement",
	"pass_thread_control", "take_thread_control", "request_thread_control",
	"app_roles", "game_play", "messaging_feedback",
}

// messagingKind names a messaging item by its payload key: message (or
// message_echo for a message the Page or account sent itself), postback,
// read, delivery, reaction, ...; else the first other key in sort order.
func messagingKind(item map[string]any) string {
	for _, k := range messagingKinds {
		v, ok := item[k]
		if !ok {
			continue
		}
		if k == "message" {
			if m, _ := v.(map[string]any); m != nil && m["is_echo"] == true {
				return "message_echo"
			}
		}
		return k
	}
	other := ""
	for k := range item {
		switch k {
		case "sender", "recipient", "timestamp":
			continue
		}
		if other == "" || k < other {
			other = k
		}
	}
	if other == "" {
		return "unknown"
	}
	return other
}

// messagingFacts reads the id, subject and time of a messaging item. The
// id is message.mid for a message or echo in the messaging list, else "".
// The subject is the person's id: the sender's, or the recipient's when
// the entry's own account sent the item (an echo).
func (e *entryInfo) messagingFacts(list, kind string, item map[string]any) (id, subject string, t time.Time) {
	if list == listMessaging && (kind == "message" || kind == "message_echo") {
		if m, _ := item["message"].(map[string]any); m != nil {
			id = text(m["mid"])
		}
	}
	idOf := func(key string) string {
		m, _ := item[key].(map[string]any)
		return text(m["id"])
	}
	subject = idOf("sender")
	if recipient := idOf("recipient"); recipient != "" && (subject == "" || subject == e.id) {
		subject = recipient
	}
	t, _ = sources.ParseTime(item["timestamp"])
	return id, subject, t
}

// reduced is the notification with only the one item: every top-level key
// as Meta sent it, and entry a one-element array holding the item's entry
// (its own keys, such as id and time) with list reduced to the one item.
// Keys keep Meta's order.
func (e *entryInfo) reduced(list string, item json.RawMessage) ([]byte, error) {
	entry := make(members, 0, len(e.members))
	for _, m := range e.members {
		switch m.key {
		case listChanges, listMessaging, listStandby:
			if m.key == list {
				entry = append(entry, member{list, wrap(item)})
			}
			continue
		}
		entry = append(entry, m)
	}
	b, err := entry.encode()
	if err != nil {
		return nil, err
	}
	return e.envelope(b)
}

// envelope is the notification with entry holding the one given entry.
func (e *entryInfo) envelope(entry json.RawMessage) ([]byte, error) {
	top := make(members, len(e.top))
	for i, m := range e.top {
		if m.key == "entry" {
			m.value = wrap(entry)
		}
		top[i] = m
	}
	return top.encode()
}

// wrap is a one-element JSON array of v.
func wrap(v json.RawMessage) json.RawMessage {
	out := make([]byte, 0, len(v)+2)
	return append(append(append(out, '['), v...), ']')
}

// member is one key of a JSON object and its value.
type member struct {
	key   string
	value json.RawMessage
}

// members are a JSON object's keys in the order they came, each once: a
// key given twice stands where it came first, with the value it was given
// last (the value encoding/json reads).
type members []member

// decodeMembers reads a JSON object into its members; ok is false when raw
// is not an object.
func decodeMembers(raw json.RawMessage) (members, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var out members
	at := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		if i, dup := at[key]; dup {
			out[i].value = v
			continue
		}
		at[key] = len(out)
		out = append(out, member{key, v})
	}
	return out, true
}

// get is the value of key, or nil.
func (ms members) get(key string) json.RawMessage {
	for _, m := range ms {
		if m.key == key {
			return m.value
		}
	}
	return nil
}

// encode writes the object without insignificant white space.
func (ms members) encode() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshal(m.key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		if err := json.Compact(&b, m.value); err != nil {
			return nil, fmt.Errorf("encoding %q: %w", m.key, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// canonical is the item's canonical JSON, which its fallback id hashes:
// encoding/json's encoding of the decoded value (object keys sorted, no
// white space, numbers as written, <, > and & not escaped).
func canonical(v any) ([]byte, error) {
	return marshal(v)
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// decodeAny decodes one JSON value with numbers kept exact, and strings
// that are not valid Unicode rendered as sources.EscapeInvalidJSON renders
// them: ids and the canonical JSON fallback ids hash are read from it, and
// must not make two updates one.
func decodeAny(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, errors.New("missing")
	}
	dec := json.NewDecoder(bytes.NewReader(sources.EscapeInvalidJSON(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", sources.ErrNotJSON, err)
	}
	return v, nil
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// text is an id-like value as text: strings trimmed, numbers as written,
// anything else "".
func text(v any) string {
	switch v.(type) {
	case string, json.Number:
		return strings.TrimSpace(sources.ValueString(v))
	}
	return ""
}

// Interface guards.
var (
	_ sources.Source         = (*Source)(nil)
	_ sources.Handshaker     = (*Source)(nil)
	_ sources.HandshakeMaker = (*Source)(nil)
	_ sources.Signer         = (*Source)(nil)
	_ sources.Config         = (*Config)(nil)
)
