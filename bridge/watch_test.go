package bridge

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReloadWhenAConfigMapVolumeSwapsItsData updates the config the way
// the kubelet updates a ConfigMap volume: config.yaml is a link to
// ..data/config.yaml, ..data a link to a timestamped directory, and an
// update writes a new directory and renames a new ..data link over the
// old one. No event names config.yaml itself; the bridge reloads anyway.
func TestReloadWhenAConfigMapVolumeSwapsItsData(t *testing.T) {
	vol := t.TempDir()
	data := t.TempDir()
	version := func(name, content string) {
		t.Helper()
		dir := filepath.Join(vol, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_12_02_10_00_00.1", testConfig(data, "  - {name: all, sinks: [archive]}\n"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("..2026_12_02_10_00_00.1", filepath.Join(vol, "..data")))
	must(os.Symlink("..data/config.yaml", filepath.Join(vol, "config.yaml")))

	a := startApp(t, filepath.Join(vol, "config.yaml"))
	if n := len(a.rt.Load().File.Routes); n != 1 {
		t.Fatalf("%d routes at start, want 1", n)
	}
	// Give the watcher time to start before the swap.
	time.Sleep(200 * time.Millisecond)

	version("..2026_12_02_10_05_00.2", testConfig(data, "  - {name: all, sinks: [archive]}\n  - {name: leads, filters: [{exact: {type: com.helloclient.lead}}], sinks: [archive]}\n"))
	must(os.Symlink("..2026_12_02_10_05_00.2", filepath.Join(vol, "..data_tmp")))
	must(os.Rename(filepath.Join(vol, "..data_tmp"), filepath.Join(vol, "..data")))
	must(os.RemoveAll(filepath.Join(vol, "..2026_12_02_10_00_00.1")))

	deadline := time.Now().Add(5 * time.Second)
	for len(a.rt.Load().File.Routes) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("still %d routes 5 s after the ConfigMap update, want 2", len(a.rt.Load().File.Routes))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
