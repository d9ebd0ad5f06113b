package tmpl

import (
	"fmt"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

func TestOnlyTemplatesReadingAttributesAreRememberedByValue(t *testing.T) {
	cases := []struct {
		tmpl string
		want bool
	}{
		{"webhooks.{{ .Extensions.bridgesource }}", true},
		{"{{ .Type }}-{{ .Source }}/{{ .Subject }}/{{ .ID }}", true},
		{"{{ .SpecVersion }}{{ .DataContentType }}", true},
		{"{{ .Data.FirstName }}", false},
		{"{{ .Event.ID }}", false},
		{"{{ .Time }}", false},
		{"{{ .Type | upper }}", false},
		{`{{ printf "%s" .Type }}`, false},
		{"{{ now }}", false},
		{"{{ if .Type }}x{{ end }}", false},
		{"{{ $t := .Type }}{{ $t }}", false},
		{"{{ . }}", false},
		{"{{ .Extensions }}", false},
		{`{{ define "x" }}{{ .Type }}{{ end }}{{ template "x" . }}`, false},
	}
	for _, c := range cases {
		if got := MustParse(c.tmpl).memo != nil; got != c.want {
			t.Errorf("%q: remembered by attribute values %v, want %v", c.tmpl, got, c.want)
		}
	}
}

// Whatever the attribute values, a remembered rendering is the rendering
// over a full view, including for a missing or non-string extension, and
// the second rendering of the same values comes from the memo.
func TestRememberedRenderingIsTheRendering(t *testing.T) {
	tm := MustParse("webhooks.{{ .Extensions.bridgesource }}.{{ .Type }}")
	ev := lead(`{"a":1}`)
	check := func(ev *event.Event) {
		t.Helper()
		want, err := tm.Render(NewView(ev))
		if err != nil {
			t.Fatal(err)
		}
		got, err := tm.RenderEvent(ev)
		if err != nil || got != want {
			t.Fatalf("RenderEvent = %q, %v; want %q", got, err, want)
		}
	}
	check(ev)
	if n := len(tm.memo.m); n != 1 {
		t.Fatalf("%d renderings remembered, want 1", n)
	}
	check(ev)
	if n := len(tm.memo.m); n != 1 {
		t.Fatalf("%d renderings remembered after the same values again, want 1", n)
	}
	ev.SetType("com.helloclient.appointment")
	check(ev)
	ev.SetExtension("bridgesource", nil) // missing
	check(ev)
	ev.SetExtension("bridgesource", 7) // not a string: rendered over a view
	check(ev)
	if n := len(tm.memo.m); n != 3 {
		t.Fatalf("%d renderings remembered, want 3", n)
	}
	for i := range attrMemoSize + 10 {
		ev.SetExtension("bridgesource", fmt.Sprint("s", i))
		check(ev)
	}
	if n := len(tm.memo.m); n > attrMemoSize {
		t.Fatalf("%d renderings remembered, more than %d", n, attrMemoSize)
	}
}

func FuzzRememberedRendering(f *testing.F) {
	f.Add("helloclient", "com.helloclient.lead", "sessions/1", true)
	f.Add("", "t", "", false)
	f.Add("<no value>", "x\x00y", "\x01", true)
	tm := MustParse("{{ .Extensions.bridgesource }}|{{ .Type }}|{{ .Subject }}")
	f.Fuzz(func(t *testing.T, source, typ, subject string, withSource bool) {
		ev := lead(`{}`)
		ev.SetType(typ)
		ev.SetSubject(subject)
		if withSource {
			ev.SetExtension("bridgesource", source)
		} else {
			ev.SetExtension("bridgesource", nil)
		}
		want, err := tm.Render(NewView(ev))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second from the memo
			got, err := tm.RenderEvent(ev)
			if err != nil || got != want {
				t.Fatalf("RenderEvent = %q, %v; want %q", got, err, want)
			}
		}
	})
}

// Values are remembered by their exact bytes: two lists of values whose
// concatenations with separators would be equal are still told apart.
func TestRememberedValuesDoNotCollide(t *testing.T) {
	tm := MustParse("{{ .Type }}|{{ .Subject }}")
	a, b := lead(`{}`), lead(`{}`)
	a.SetType("x\x00\x01y")
	a.SetSubject("z")
	b.SetType("x")
	b.SetSubject("y\x00\x01z")
	for _, ev := range []*event.Event{a, b} {
		want := ev.Type() + "|" + ev.Subject()
		if got, err := tm.RenderEvent(ev); err != nil || got != want {
			t.Fatalf("RenderEvent = %q, %v; want %q", got, err, want)
		}
	}
}

// BenchmarkRenderAttributes is the kafka sink's default topic template,
// remembered: what a drain pays per event to name its topic.
func BenchmarkRenderAttributes(b *testing.B) {
	tm := MustParse("webhooks.{{ .Extensions.bridgesource }}")
	ev := lead(`{"a":1}`)
	ev.SetExtension("bridgesource", "helloclient")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := tm.RenderAttributes(ev); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
