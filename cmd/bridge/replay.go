package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/bridge"
	"github.com/hookbridge/hookbridge/inspect"
	"github.com/hookbridge/hookbridge/router"
)

// deadLetterPageSize is how many dead letters one request to the admin API lists.
const deadLetterPageSize = 200

// cmdReplay queues dead-lettered events again, through the running bridge's
// admin API, for the sink that gave up on them or another: after fixing
// what made a sink refuse them (a CRM's field mapping, a revoked token).
func cmdReplay(ctx context.Context, args []string, stdout io.Writer) error {
	a, err := parseDeadLetterArgs("replay", args, time.Now())
	if err != nil {
		return err
	}
	return a.run(ctx, stdout, "replay", "replayed", func(api *adminAPI, dl inspect.DeadLetterView) (string, error) {
		sink := a.to
		if sink == "" {
			sink = dl.Sink
		}
		what := fmt.Sprintf("%s to %s: %s %s", dl.Key, sink, oneLine(dl.EventType), oneLine(dl.EventID))
		if a.dryRun {
			return what + " (" + oneLine(dl.Reason) + ")", nil
		}
		return what, api.replay(ctx, dl.Key, a.to)
	})
}

// cmdDiscard removes dead letters for good: events no one needs delivered
// any more, rejected request bodies once looked at.
func cmdDiscard(ctx context.Context, args []string, stdout io.Writer) error {
	a, err := parseDeadLetterArgs("discard", args, time.Now())
	if err != nil {
		return err
	}
	return a.run(ctx, stdout, "discard", "discarded", func(api *adminAPI, dl inspect.DeadLetterView) (string, error) {
		what := fmt.Sprintf("%s: %s %s (%s)", dl.Key, oneLine(dl.EventType), oneLine(dl.EventID), oneLine(dl.Reason))
		if !dl.Replayable {
			what = fmt.Sprintf("%s: a request body from %s (%s)", dl.Key, dl.Source, oneLine(dl.Reason))
		}
		if a.dryRun {
			return what, nil
		}
		return what, api.discard(ctx, dl.Key)
	})
}

// oneLine escapes what a terminal would not print as itself in s (a reason
// holding a CRM's answer, an id from a payload): control and format
// characters, line and paragraph separators, bytes that are not UTF-8. Each
// dead letter then takes one line, and none can pass for another.
func oneLine(s string) string {
	printable := func(s string) bool {
		return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r != ' ' && !strconv.IsPrint(r) })
	}
	if printable(s) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case r != ' ' && !strconv.IsPrint(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// deadLetterArgs are the options of bridge replay and bridge discard.
type deadLetterArgs struct {
	config, admin, sink, to, filter string
	since, before                   time.Time
	dryRun                          bool
}

// run walks the dead letters through the admin API, newest first, and
// calls act on each it selects; act describes the dead letter and does
// what verb says unless this is a dry run.
func (a deadLetterArgs) run(ctx context.Context, stdout io.Writer, verb, done string, act func(*adminAPI, inspect.DeadLetterView) (string, error)) error {
	var match func(*event.Event) bool
	if a.filter != "" {
		var err error
		if match, err = router.ParseFilter(a.filter); err != nil {
			return fmt.Errorf("--filter: %w", err)
		}
	}
	// Only the admin section must be valid: replay and discard are run
	// from shells that need not have the sources' and sinks' secrets.
	f, err := bridge.LoadSections(a.config, []string{"admin"})
	if err != nil {
		return err
	}
	if a.to != "" {
		switch s := f.Sink(a.to); {
		case s == nil:
			return fmt.Errorf("--to: no sink named %q in %s (sinks: %s)", a.to, a.config, sinkNames(f))
		case !s.IsEnabled():
			return fmt.Errorf("--to: sink %q is disabled in %s", a.to, a.config)
		}
	}
	api, err := newAdminAPI(f, a.admin)
	if err != nil {
		return err
	}
	var acted, failed, skipped int
	before := ""
	for {
		page, err := api.deadLetters(ctx, before)
		if err != nil {
			return err
		}
		for _, dl := range page.DeadLetters {
			if !a.selects(dl, match) {
				continue
			}
			if verb == "replay" && !dl.Replayable {
				skipped++
				continue
			}
			what, err := act(api, dl)
			switch {
			case a.dryRun:
				fmt.Fprintf(stdout, "would %s %s\n", verb, what)
			case err != nil:
				fmt.Fprintf(stdout, "failed to %s %s: %v\n", verb, what, err)
				failed++
				continue
			default:
				fmt.Fprintf(stdout, "%s %s\n", done, what)
			}
			acted++
		}
		if page.Next == "" {
			break
		}
		before = page.Next
	}
	if a.dryRun {
		done = "would " + verb
	}
	fmt.Fprintf(stdout, "%s %d dead letter(s)", done, acted)
	if failed > 0 {
		fmt.Fprintf(stdout, ", %d failed", failed)
	}
	if skipped > 0 {
		fmt.Fprintf(stdout, "; %d rejected request bod(ies) cannot be replayed", skipped)
	}
	fmt.Fprintln(stdout)
	if a.sink != "" && acted == 0 && f.Sink(a.sink) == nil {
		// Not an error: the dead letters of a sink since removed from the
		// config can still be selected by its name.
		fmt.Fprintf(stdout, "(%s has no sink named %q; sinks: %s)\n", a.config, a.sink, sinkNames(f))
	}
	if failed > 0 {
		return fmt.Errorf("%d dead letter(s) failed to %s", failed, verb)
	}
	return nil
}

func parseDeadLetterArgs(cmd string, args []string, now time.Time) (deadLetterArgs, error) {
	var a deadLetterArgs
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	path := configFlag(fs)
	fs.StringVar(&a.admin, "admin", "", "the admin listener's base URL (default: this config's admin.listen, over HTTPS with admin.tls)")
	fs.StringVar(&a.sink, "sink", "", "only dead letters of this sink (the one that gave up, or whose dead_letter sink gave up in turn)")
	since := fs.String("since", "", "only dead letters from the last DURATION (e.g. 2h) or since an RFC 3339 time")
	before := fs.String("before", "", "only dead letters older than DURATION (e.g. 720h) or from before an RFC 3339 time")
	fs.StringVar(&a.filter, "filter", "", "only events this filter matches: a CESQL expression, or a route filter in YAML (e.g. '{exact: {type: com.helloclient.lead}}')")
	if cmd == "replay" {
		fs.StringVar(&a.to, "to", "", "replay to this sink instead of the one that gave up")
	}
	fs.BoolVar(&a.dryRun, "dry-run", false, "list what would be done; change nothing")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return a, err
	}
	if len(rest) > 0 {
		return a, fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
	}
	if err := needConfig(*path); err != nil {
		return a, err
	}
	a.config = *path
	if a.since, err = pointInTime("since", *since, now); err != nil {
		return a, err
	}
	if a.before, err = pointInTime("before", *before, now); err != nil {
		return a, err
	}
	return a, nil
}

// pointInTime reads a --since or --before value: a duration back from now,
// or an RFC 3339 time. Empty is the zero time.
func pointInTime(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: --%s %q: want a duration (2h) or an RFC 3339 time", errUsage, flag, v)
}

// selects reports whether the options select dl. A rejected request body
// (not an event) has no sink and matches no filter: only a selection by
// time alone takes it.
func (a deadLetterArgs) selects(dl inspect.DeadLetterView, match func(*event.Event) bool) bool {
	if !a.since.IsZero() && dl.At.Before(a.since) {
		return false
	}
	if !a.before.IsZero() && !dl.At.Before(a.before) {
		return false
	}
	if !dl.Replayable {
		return a.sink == "" && match == nil
	}
	// A sink's dead letters include those its dead_letter sink gave up on
	// in turn.
	if a.sink != "" && dl.Sink != a.sink && dl.From != a.sink {
		return false
	}
	if match != nil {
		ev := event.New()
		if err := json.Unmarshal(dl.Event, &ev); err != nil || !match(&ev) {
			return false
		}
	}
	return true
}

// adminAPI is the inspector's JSON API on the admin listener.
type adminAPI struct {
	base, token string
	client      *http.Client
}

// newAdminAPI reaches the admin listener of f (or base, when set), with
// f's admin token, over HTTPS trusting f's admin certificate when it has one.
func newAdminAPI(f *bridge.File, base string) (*adminAPI, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	if base == "" {
		if f.Admin.Listen == "" {
			return nil, errors.New("admin.listen is off in the config: give --admin URL")
		}
		base = "http://" + dialAddr(f.Admin.Listen)
		if t := f.Admin.TLS; t.Enabled() {
			tc, err := trustServed(t.CertFile)
			if err != nil {
				return nil, fmt.Errorf("admin.tls: %w", err)
			}
			base = "https://" + dialAddr(f.Admin.Listen)
			client.Transport = &http.Transport{TLSClientConfig: tc}
		}
	}
	return &adminAPI{base: strings.TrimRight(base, "/") + inspect.Prefix + "api/", token: f.Admin.Token, client: client}, nil
}

type deadLetterPage struct {
	DeadLetters []inspect.DeadLetterView `json:"dead_letters"`
	Next        string                   `json:"next"`
}

func (api *adminAPI) deadLetters(ctx context.Context, before string) (*deadLetterPage, error) {
	q := url.Values{"limit": {fmt.Sprint(deadLetterPageSize)}}
	if before != "" {
		q.Set("before", before)
	}
	var page deadLetterPage
	if err := api.call(ctx, http.MethodGet, "deadletters?"+q.Encode(), nil, &page); err != nil {
		return nil, fmt.Errorf("listing dead letters: %w", err)
	}
	return &page, nil
}

func (api *adminAPI) replay(ctx context.Context, key, sink string) error {
	body, _ := json.Marshal(inspect.ReplayRequest{Sink: sink})
	return api.call(ctx, http.MethodPost, "deadletters/"+url.PathEscape(key)+"/replay", body, nil)
}

func (api *adminAPI) discard(ctx context.Context, key string) error {
	return api.call(ctx, http.MethodDelete, "deadletters/"+url.PathEscape(key), nil, nil)
}

func (api *adminAPI) call(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, api.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if api.token != "" {
		req.Header.Set("Authorization", "Bearer "+api.token)
	}
	// Named in the bridge's log of what was replayed or discarded.
	req.Header.Set("User-Agent", "bridge-cli/"+version)
	resp, err := api.client.Do(req)
	if err != nil {
		return fmt.Errorf("is the bridge running? %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("reading the answer: %w", err)
		}
	}
	return nil
}

// sinkNames lists f's sinks by name, for messages about a name it lacks.
func sinkNames(f *bridge.File) string {
	names := make([]string, 0, len(f.Sinks))
	for _, s := range f.Sinks {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
