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
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/bridge"
	"github.com/hookbridge/hookbridge/inspect"
	"github.com/hookbridge/hookbridge/router"
)

// replayPage is how many dead letters one request to the admin API lists.
const replayPage = 200

// replayArgs are the options of bridge replay.
type replayArgs struct {
	config, admin, sink, to, filter string
	since                           time.Time
	dryRun                          bool
}

// cmdReplay queues dead-lettered events again, through the running bridge's
// admin API, for the sink that gave up on them or another: after fixing
// what made a sink refuse them (a CRM's field mapping, a revoked token).
func cmdReplay(ctx context.Context, args []string, stdout io.Writer) error {
	a, err := parseReplayArgs(args, time.Now())
	if err != nil {
		return err
	}
	var match func(*event.Event) bool
	if a.filter != "" {
		if match, err = router.ParseFilter(a.filter); err != nil {
			return fmt.Errorf("--filter: %w", err)
		}
	}
	f, err := bridge.Load(a.config)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	base := a.admin
	if base == "" {
		if f.Admin.Listen == "" {
			return errors.New("admin.listen is off in the config: give --admin URL")
		}
		base = "http://" + dialAddr(f.Admin.Listen)
		if t := f.Admin.TLS; t.Enabled() {
			tc, err := trustServed(t.CertFile)
			if err != nil {
				return fmt.Errorf("admin.tls: %w", err)
			}
			base = "https://" + dialAddr(f.Admin.Listen)
			client.Transport = &http.Transport{TLSClientConfig: tc}
		}
	}
	api := &adminAPI{base: strings.TrimRight(base, "/") + inspect.Prefix + "api/", token: f.Admin.Token, client: client}

	var replayed, failed, skipped int
	before := ""
	for {
		page, err := api.deadLetters(ctx, before)
		if err != nil {
			return err
		}
		for _, dl := range page.DeadLetters {
			ok, why := a.selects(dl, match)
			if !ok {
				if why != "" {
					skipped++
				}
				continue
			}
			sink := a.to
			if sink == "" {
				sink = dl.Sink
			}
			if a.dryRun {
				fmt.Fprintf(stdout, "would replay %s to %s: %s %s (%s)\n", dl.Key, sink, dl.EventType, dl.EventID, dl.Reason)
				replayed++
				continue
			}
			if err := api.replay(ctx, dl.Key, a.to); err != nil {
				fmt.Fprintf(stdout, "failed   %s: %v\n", dl.Key, err)
				failed++
				continue
			}
			fmt.Fprintf(stdout, "replayed %s to %s: %s %s\n", dl.Key, sink, dl.EventType, dl.EventID)
			replayed++
		}
		if page.Next == "" {
			break
		}
		before = page.Next
	}
	verb := "replayed"
	if a.dryRun {
		verb = "would replay"
	}
	fmt.Fprintf(stdout, "%s %d dead letter(s)", verb, replayed)
	if failed > 0 {
		fmt.Fprintf(stdout, ", %d failed", failed)
	}
	if skipped > 0 {
		fmt.Fprintf(stdout, "; %d rejected request bod(ies) cannot be replayed", skipped)
	}
	fmt.Fprintln(stdout)
	if failed > 0 {
		return fmt.Errorf("%d replay(s) failed", failed)
	}
	return nil
}

func parseReplayArgs(args []string, now time.Time) (replayArgs, error) {
	var a replayArgs
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	path := configFlag(fs)
	fs.StringVar(&a.admin, "admin", "", "the admin listener's base URL (default: http:// and this config's admin.listen)")
	fs.StringVar(&a.sink, "sink", "", "only dead letters of this sink (the one that gave up)")
	since := fs.String("since", "", "only dead letters from the last DURATION (e.g. 2h) or since an RFC 3339 time")
	fs.StringVar(&a.filter, "filter", "", "only events this filter matches: a CESQL expression, or a route filter in YAML (e.g. '{exact: {type: com.helloclient.lead}}')")
	fs.StringVar(&a.to, "to", "", "replay to this sink instead of the one that gave up")
	fs.BoolVar(&a.dryRun, "dry-run", false, "list what would be replayed; replay nothing")
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
	if *since != "" {
		if d, err := time.ParseDuration(*since); err == nil && d > 0 {
			a.since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, *since); err == nil {
			a.since = t
		} else {
			return a, fmt.Errorf("%w: --since %q: want a duration (2h) or an RFC 3339 time", errUsage, *since)
		}
	}
	return a, nil
}

// selects reports whether a replays dl; why is set for a dead letter that
// no replay can take (a rejected request body) among those the options
// would otherwise select.
func (a replayArgs) selects(dl inspect.DeadLetterView, match func(*event.Event) bool) (ok bool, why string) {
	if !a.since.IsZero() && dl.At.Before(a.since) {
		return false, ""
	}
	if !dl.Replayable {
		if a.sink == "" && match == nil {
			return false, "a rejected request body"
		}
		return false, ""
	}
	if a.sink != "" && dl.Sink != a.sink {
		return false, ""
	}
	if match != nil {
		ev := event.New()
		if err := json.Unmarshal(dl.Event, &ev); err != nil || !match(&ev) {
			return false, ""
		}
	}
	return true, ""
}

// adminAPI is the inspector's JSON API on the admin listener.
type adminAPI struct {
	base, token string
	client      *http.Client
}

type deadLetterPage struct {
	DeadLetters []inspect.DeadLetterView `json:"dead_letters"`
	Next        string                   `json:"next"`
}

func (api *adminAPI) deadLetters(ctx context.Context, before string) (*deadLetterPage, error) {
	q := url.Values{"limit": {fmt.Sprint(replayPage)}}
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
