// Package sinktest holds what the tests of sink kinds share: decoding a
// sink's own keys as the config loader does, the examples a kind documents,
// a lead event to deliver, and HTTP peers that fail in set ways.
package sinktest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/delivery"
	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/sources"
)

// AdaLead is the data of a Hello Client lead, with quotes, a newline and a
// non-ASCII letter in it.
const AdaLead = `{"Type":"lead","SerialNumber":"HC-8842","ChatbotName":"Acme Sales Assistant","SessionID":"9f1c2e7a","FirstName":"Ada","LastName":"Lovelace","Email":"ada@example.com","Phone":"+44 20 7946 0958","Message":"Do you ship to \"Zürich\"?\nI'd like a quote.","CreateTime":"2026-11-20T10:15:00Z"}`

// LeadEvent is a Hello Client lead with data as the helloclient source
// makes it.
func LeadEvent(t testing.TB, data string) *event.Event {
	t.Helper()
	ev := sources.NewEvent("13abbe36a2cb1fda", "com.helloclient.lead", "https://helloclient.com/chatbots/HC-8842",
		"sessions/9f1c2e7a", time.Date(2026, 11, 20, 10, 15, 0, 0, time.UTC), []byte(data))
	ev.SetExtension("bridgesource", "helloclient")
	return ev
}

// Decode decodes a sink's own keys (src, without type) into cfg the way the
// config loader does: ${VAR} expanded from env, strict keys, then Validate.
// Errors name test.yaml and the line and column.
func Decode(t testing.TB, src string, env map[string]string, cfg sinks.Config) error {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(src), &root); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	d := &config.Decoder{File: "test.yaml"}
	d.Merge(&root)
	d.Expand(&root, func(name string) (string, bool) { v, ok := env[name]; return v, ok })
	d.Decode(&root, cfg)
	if d.Err() == nil {
		d.Validate(root.Content[0], cfg)
	}
	return d.Err()
}

// New builds the sink named name from cfg, which must be an S, and closes
// it when the test ends.
func New[S sinks.Sink](t testing.TB, cfg sinks.Config, name string) S {
	t.Helper()
	s, err := cfg.NewSink(name)
	if err != nil {
		t.Fatalf("NewSink: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	typed, ok := s.(S)
	if !ok {
		t.Fatalf("NewSink made a %T", s)
	}
	return typed
}

// commonKeys are the keys every sink has: its type, enabled, and its
// delivery policy's (retry, dead_letter, rate_limit, ...).
func commonKeys() map[string]bool {
	keys := map[string]bool{"type": true, "enabled": true}
	t := reflect.TypeOf(delivery.Policy{})
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" {
			keys[name] = true
		}
	}
	return keys
}

// OwnKeys returns the keys of the one sink an example defines, without
// those every sink has; its type must be typ.
func OwnKeys(t testing.TB, src, typ string) string {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(src), &root); err != nil {
		t.Fatal(err)
	}
	if len(root.Content[0].Content) != 2 {
		t.Fatalf("want one named sink, got %d nodes", len(root.Content[0].Content))
	}
	own := root.Content[0].Content[1]
	if _, typNode := config.Lookup(own, "type"); typNode == nil || typNode.Value != typ {
		t.Fatalf("type: %v, want %s", typNode, typ)
	}
	stripped := &yaml.Node{Kind: yaml.MappingNode}
	common := commonKeys()
	for i := 0; i+1 < len(own.Content); i += 2 {
		if !common[own.Content[i].Value] {
			stripped.Content = append(stripped.Content, own.Content[i], own.Content[i+1])
		}
	}
	out, err := yaml.Marshal(stripped)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// Examples returns the YAML examples a sink kind documents, by name: its
// example.yaml (given as example) and each tab-indented block of the package
// comment in doc.go ("doc.go block 1", ...).
func Examples(t testing.TB, example string) map[string]string {
	t.Helper()
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{"example.yaml": example}
	for i, block := range CommentBlocks(string(doc)) {
		out["doc.go block "+string(rune('1'+i))] = block
	}
	return out
}

// CommentBlocks returns the tab-indented blocks of Go comments in src.
func CommentBlocks(src string) []string {
	var blocks []string
	var cur strings.Builder
	for _, line := range strings.Split(src, "\n") {
		if rest, ok := strings.CutPrefix(line, "//\t"); ok {
			cur.WriteString(rest + "\n")
			continue
		}
		if cur.Len() > 0 {
			blocks = append(blocks, cur.String())
			cur.Reset()
		}
	}
	return blocks
}

// HangingServer is an endpoint that reads each request and then never
// answers until the client gives up or the test ends.
func HangingServer(t testing.TB) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	// Cleanups run last in, first out: release the handlers, then close.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv
}

// ClosedAddr is a loopback host:port where nothing listens.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
