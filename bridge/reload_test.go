package bridge

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A reload changes the admin token and the log level of the running
// bridge: the old token is refused at once, the new one let in.
func TestReloadChangesTheAdminTokenAndTheLogLevel(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bridge.yaml")
	write := func(token, level string) {
		t.Helper()
		conf := testConfig(dir, "  - {name: all, sinks: [archive]}\n")
		conf = strings.Replace(conf, `admin: {listen: "127.0.0.1:0"}`, `admin: {listen: "127.0.0.1:0", token: "`+token+`"}`, 1)
		conf = strings.Replace(conf, "log: {level: error}", "log: {level: "+level+"}", 1)
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("first-token", "error")
	a := startApp(t, path)
	status := func(token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+a.AdminAddr().String()+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := [3]int{status(""), status("first-token"), status("second-token")}; got != [3]int{401, 200, 401} {
		t.Fatalf("before the reload, none/first/second: %v", got)
	}
	if a.log.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("debug enabled at level error")
	}

	write("second-token", "debug")
	if err := a.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := [3]int{status(""), status("first-token"), status("second-token")}; got != [3]int{401, 401, 200} {
		t.Fatalf("after the reload, none/first/second: %v", got)
	}
	if !a.log.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("log.level debug not applied")
	}
	// The inspector checks the token itself too.
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.AdminAddr().String()+"/inspector/api/events", nil)
	req.Header.Set("Authorization", "Bearer second-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("inspector with the new token: %d", resp.StatusCode)
	}
}

// A reload asked for while the bridge is starting (a SIGHUP right after a
// restart) waits for the start, then reads the file, instead of finding
// nothing running.
func TestReloadAskedWhileStartingWaitsForTheStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(path, []byte(testConfig(dir, "  - {name: all, sinks: [archive]}\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	a := New(path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloaded := make(chan error, 1)
	go func() { reloaded <- a.Reload(ctx) }()
	select {
	case err := <-reloaded:
		t.Fatalf("reload returned before the bridge ran: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case err := <-reloaded:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reload did not happen once the bridge started")
	}
	if n := testutil.ToFloat64(a.m.ConfigReloads.WithLabelValues("ok")); n != 1 {
		t.Errorf("reloads ok = %v, want 1", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}
