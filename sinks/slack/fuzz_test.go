package slack

import (
	"encoding/json"
	"testing"

	"github.com/hookbridge/hookbridge/sinks/sinktest"
	"github.com/hookbridge/hookbridge/tmpl"
)

// fuzzBlocks mixes fixed blocks with blocks whose shape comes from the
// payload (raw toJson leaves), so arbitrary data reaches slack-go's Block Kit
// decoder as well as the text leaves.
const fuzzBlocks = `
text: "{{ .Data.FirstName }}"
blocks:
  - type: section
    text: {type: mrkdwn, text: "{{ .Data.FirstName }} {{ .Data.Message }}"}
    fields:
      - {type: plain_text, text: "{{ .Data.Email }}", emoji: true}
  - "{{ .Data.block | toJson }}"
  - type: "{{ .Data.kind }}"
    elements: "{{ .Data.elements | toJson }}"
    accessory: "{{ .Data.accessory | toJson }}"
`

// FuzzRenderBlocks: whatever the payload, rendering the blocks gives Block
// Kit that marshals back to valid JSON, with a type on every block, or an
// error; never a panic.
func FuzzRenderBlocks(f *testing.F) {
	for _, seed := range []string{
		sinktest.AdaLead,
		`{"block":{"type":"divider"},"kind":"divider","FirstName":"A & <b>"}`,
		`{"block":{"type":"header","text":{"type":"plain_text","text":"x"}},"kind":"context","elements":[{"type":"plain_text","text":"y"}]}`,
		`{"block":{"type":"future_block","x":[1]},"kind":"section","elements":[]}`,
		`{"kind":"divider"}`,
		`{"kind":"actions","elements":[{"type":"button","text":{"type":"plain_text","text":"Go"},"url":"https://x"}]}`,
		`{"kind":"input","elements":null,"block":{"type":"input","element":{"type":"plain_text_input"},"label":{"type":"plain_text","text":"l"}}}`,
		`{"kind":"section","accessory":{"type":"image","image_url":"https://x/y.png","alt_text":"a"}}`,
		`{"kind":"rich_text","elements":[{"type":"rich_text_section","elements":[{"type":"text","text":"x"}]}]}`,
		`{"kind":"context","elements":[{"type":"mrkdwn","text":"<!channel> & \"q\""}],"block":{"type":"header"}}`,
		`{"block":{"type":"input","element":{"type":"nope"}},"kind":"image"}`,
		`{"block":[1,2],"kind":""}`, `{"block":"str","kind":"file"}`, `{"kind":"table","elements":[[{}]]}`,
		`"text"`, `[]`, `null`, `{{`, "\xff",
	} {
		f.Add(seed)
	}
	s := mustSink(f, "webhook_url: https://hooks.slack.invalid/services/T/B/X\n"+fuzzBlocks, nil)
	f.Fuzz(func(t *testing.T, data string) {
		view := tmpl.NewView(sinktest.LeadEvent(t, data))
		blocks, err := RenderBlocks(s.blocks, escapedView(view))
		if err != nil {
			return
		}
		if blocks == nil {
			t.Fatal("the fixed section block vanished")
		}
		out, err := json.Marshal(blocks)
		if err != nil {
			t.Fatalf("blocks from %q do not marshal: %v", data, err)
		}
		if !json.Valid(out) {
			t.Fatalf("blocks from %q marshal to invalid JSON: %s", data, out)
		}
		for i, b := range blocks.BlockSet {
			if b.BlockType() == "" {
				t.Fatalf("block %d has no type: %s", i, out)
			}
		}
		if _, err := s.Render(sinktest.LeadEvent(t, data)); err != nil {
			t.Fatalf("blocks render but the message does not: %v", err)
		}
	})
}
