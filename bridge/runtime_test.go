package bridge

import "testing"

// A reload rebuilds a sink whose settings changed through an anchor it
// uses, written elsewhere in the file, and keeps one whose settings did
// not change.
func TestReloadRebuildsASinkWhoseAnchorChanged(t *testing.T) {
	conf := func(token string) string {
		return `
x-auth: &auth {Authorization: "Bearer ` + token + `"}
sources:
  hc: {type: helloclient, secret: s}
sinks:
  crm: {type: http, url: "https://crm.example/leads", headers: *auth}
routes:
  - {name: all, sinks: [crm]}
`
	}
	build := func(src string, prev *Runtime) *Runtime {
		t.Helper()
		f, errs := parse(t, src, nil)
		if errs != nil {
			t.Fatal(errs)
		}
		rt, err := Build(f, prev)
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	first := build(conf("one"), nil)
	same := build(conf("one"), first)
	if same.Sinks["crm"] != first.Sinks["crm"] {
		t.Error("an unchanged sink was rebuilt")
	}
	edited := build(conf("two"), same)
	if edited.Sinks["crm"] == same.Sinks["crm"] {
		t.Error("the sink was kept although the anchor it uses changed")
	}
}
