package socialboards

import (
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

// Query parameters Socialboards sends, and the one hookbridge adds.
const (
	ChallengeParam   = "challenge"
	VerifyTokenParam = "verifyToken"
	KeyParam         = "key"
)

// Source verifies and converts Socialboards webhooks.
type Source struct {
	verifyToken string
	key         string // empty: POSTs are accepted without one (allow_unsigned)
}

// IsHandshake reports whether req is Socialboards' endpoint verification: a
// GET with a challenge.
func (s *Source) IsHandshake(req *sources.Request) bool {
	return req.Method == http.MethodGet && req.Query.Get(ChallengeParam) != ""
}

// HandshakeMethod is GET: Socialboards verifies the endpoint with one.
func (s *Source) HandshakeMethod() string { return http.MethodGet }

// Handshake answers the verification GET with the challenge as plain text
// when verifyToken matches.
func (s *Source) Handshake(req *sources.Request) (sources.Reply, error) {
	token := req.Query.Get(VerifyTokenParam)
	if token == "" {
		return sources.Reply{}, fmt.Errorf("%w: no %s in the verification request", sources.ErrBadKey, VerifyTokenParam)
	}
	if !sources.EqualSecret(token, s.verifyToken) {
		return sources.Reply{}, fmt.Errorf("%w: %s does not match verify_token", sources.ErrBadKey, VerifyTokenParam)
	}
	return sources.Reply{
		Status:      http.StatusOK,
		ContentType: "text/plain; charset=utf-8",
		Body:        []byte(req.Query.Get(ChallengeParam)),
	}, nil
}

// MakeHandshake builds the verification GET Socialboards sends when the
// webhook is saved, for `bridge send`.
func (s *Source) MakeHandshake(now time.Time) (*sources.Request, error) {
	q := url.Values{
		ChallengeParam:   {strconv.FormatInt(now.UnixNano()%1e10, 10)},
		VerifyTokenParam: {s.verifyToken},
	}
	if s.key != "" {
		q.Set(KeyParam, s.key)
	}
	return &sources.Request{Method: http.MethodGet, Header: http.Header{}, Query: q, ReceivedAt: now}, nil
}

// Verify checks the key query parameter of an event POST. Socialboards does
// not sign its requests; with allow_unsigned the source's allow_ips is the
// only guard, and Verify accepts any POST.
func (s *Source) Verify(req *sources.Request) error {
	if req.Method != http.MethodPost {
		return fmt.Errorf("%w: %s (Socialboards POSTs events; a GET must carry a challenge)", sources.ErrMethodNotAllowed, req.Method)
	}
	if s.key == "" {
		return nil
	}
	got := req.Query.Get(KeyParam)
	if got == "" {
		return fmt.Errorf("%w: no %s query parameter", sources.ErrBadKey, KeyParam)
	}
	if !sources.EqualSecret(got, s.key) {
		return fmt.Errorf("%w: %s query parameter does not match", sources.ErrBadKey, KeyParam)
	}
	return nil
}

// Sign adds the key query parameter, as the endpoint URL given to
// Socialboards does.
func (s *Source) Sign(req *sources.Request) error {
	if req.Query == nil {
		req.Query = url.Values{}
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if s.key != "" {
		req.Query.Set(KeyParam, s.key)
	}
	req.Header.Set("Content-Type", "application/json")
	return nil
}

// Convert makes one CloudEvent of a notification.
func (s *Source) Convert(req *sources.Request) ([]*event.Event, error) {
	payload, err := sources.DecodePicked(req.Body, readsKey)
	if err != nil {
		return nil, err
	}
	community := field(payload, "CommunityName")
	if community == "" {
		community = "unknown"
	}
	ev := sources.NewEvent(
		sources.SHA256Hex(req.Body),
		"com.socialboards."+sources.TypeSuffix(field(payload, "EventType")),
		"https://inbox.socialboards.com/"+url.PathEscape(community),
		subject(ticketID(payload)),
		time.Time{},
		req.Body,
	)
	return []*event.Event{ev}, nil
}

// readsKey reports whether Convert reads the payload's top-level key, in
// any case, as lookup matches it.
func readsKey(key string) bool {
	for _, k := range []string{"CommunityName", "EventType", "TicketId", "Events"} {
		if strings.EqualFold(key, k) {
			return true
		}
	}
	return false
}

// ticketID is the payload's TicketId, or else the Id of the first event's
// Ticket (older payloads carry no TicketId).
func ticketID(payload map[string]any) string {
	if id := field(payload, "TicketId"); id != "" {
		return id
	}
	events, _ := lookup(payload, "Events").([]any)
	if len(events) == 0 {
		return ""
	}
	first, _ := events[0].(map[string]any)
	ticket, _ := lookup(first, "Ticket").(map[string]any)
	return field(ticket, "Id")
}

// lookup returns m[key], matching the key's case loosely when it is not
// spelled as documented (the first such key in sort order, so the answer
// does not depend on map order).
func lookup(m map[string]any, key string) any {
	if v, ok := m[key]; ok {
		return v
	}
	match := ""
	for k := range m {
		if strings.EqualFold(k, key) && (match == "" || k < match) {
			match = k
		}
	}
	if match == "" {
		return nil
	}
	return m[match]
}

// field is m[key] as text: strings as they are, numbers in their JSON
// spelling, anything else "".
func field(m map[string]any, key string) string {
	switch v := lookup(m, key).(type) {
	case string:
		return strings.TrimSpace(v)
	case json.Number:
		return v.String()
	}
	return ""
}

func subject(ticket string) string {
	if ticket == "" {
		return ""
	}
	return "tickets/" + ticket
}

// Interface guards.
var (
	_ sources.Source         = (*Source)(nil)
	_ sources.Handshaker     = (*Source)(nil)
	_ sources.HandshakeMaker = (*Source)(nil)
	_ sources.Signer         = (*Source)(nil)
	_ sources.Config         = (*Config)(nil)
)
