package router

import (
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

func TestParseFilter(t *testing.T) {
	lead := event.New()
	lead.SetID("1")
	lead.SetSource("https://helloclient.com/chatbots/HC-1")
	lead.SetType("com.helloclient.lead")
	lead.SetExtension("bridgesource", "helloclient")
	if err := lead.SetData(event.ApplicationJSON, map[string]any{"Email": "ada@example.com"}); err != nil {
		t.Fatal(err)
	}
	chat := lead.Clone()
	chat.SetType("com.helloclient.chatlog")

	for _, c := range []struct {
		filter     string
		lead, chat bool
	}{
		{"type = 'com.helloclient.lead'", true, false},
		{`"bridgesource = 'helloclient'"`, true, true},
		{"{exact: {type: com.helloclient.chatlog}}", false, true},
		{"prefix: {type: com.helloclient.}", true, true},
		{"{suffix: {data.Email: '@example.com'}}", true, true},
		{"{not: {exact: {type: com.helloclient.lead}}}", false, true},
		{"{any: [{exact: {type: com.helloclient.lead}}, {exact: {type: x}}]}", true, false},
	} {
		match, err := ParseFilter(c.filter)
		if err != nil {
			t.Errorf("%s: %v", c.filter, err)
			continue
		}
		if got := match(&lead); got != c.lead {
			t.Errorf("%s on the lead: %v, want %v", c.filter, got, c.lead)
		}
		if got := match(&chat); got != c.chat {
			t.Errorf("%s on the chat log: %v, want %v", c.filter, got, c.chat)
		}
	}

	for filter, want := range map[string]string{
		"type = ":                      "filter:1:1: route",
		"{exakt: {type: x}}":           "filter:1:2",
		"":                             "filter: empty",
		"{exact: {type: x}, cesql: y}": "filter:1:",
		"[1, 2]":                       "filter:1:1",
	} {
		if _, err := ParseFilter(filter); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want one with %q", filter, err, want)
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	f.Add("type = 'com.helloclient.lead'")
	f.Add("{exact: {type: x}}")
	f.Add("{any: [{prefix: {data.a.b: c}}, {not: {cesql: \"id = '1'\"}}]}")
	f.Add("&a {all: [*a]}")
	ev := event.New()
	ev.SetID("1")
	ev.SetSource("/s")
	ev.SetType("t")
	f.Fuzz(func(t *testing.T, filter string) {
		match, err := ParseFilter(filter)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		match(&ev)
	})
}
