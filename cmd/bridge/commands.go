package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hookbridge/hookbridge/bridge"
	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/sources"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func configFlag(fs *flag.FlagSet) *string {
	c := fs.String("c", "", "configuration file")
	fs.StringVar(c, "config", "", "the same as -c")
	return c
}

func needConfig(path string) error {
	if path == "" {
		return fmt.Errorf("%w: -c FILE is required", errUsage)
	}
	return nil
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := configFlag(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needConfig(*path); err != nil {
		return err
	}
	app := bridge.New(*path)
	app.UseAsDefaultLogger()
	app.ManageMemoryLimit()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				app.Reload(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
	return app.Run(ctx)
}

func cmdValidate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	path := configFlag(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needConfig(*path); err != nil {
		return err
	}
	f, err := bridge.Load(*path)
	if err == nil {
		_, err = bridge.Build(f, nil)
	}
	if err != nil {
		if errs, ok := err.(config.Errors); ok {
			for _, e := range errs {
				fmt.Fprintln(stdout, e.Error())
			}
			return fmt.Errorf("%s: %d problem(s)", *path, len(errs))
		}
		return err
	}
	enabled := 0
	for _, s := range f.Sinks {
		if s.IsEnabled() {
			enabled++
		}
	}
	fmt.Fprintf(stdout, "%s is valid: %d source(s), %d sink(s) (%d enabled), %d route(s)\n", *path, len(f.Sources), len(f.Sinks), enabled, len(f.Routes))
	return nil
}

// loadSource loads the config and builds the named source. With whole,
// every section must be valid; without, only the listener and that source
// (bridge send needs no sink, nor the other sources' secrets).
func loadSource(path, name string, whole bool) (*bridge.File, *bridge.SourceSpec, sources.Source, error) {
	var f *bridge.File
	var err error
	if whole {
		f, err = bridge.Load(path)
	} else {
		f, err = bridge.LoadSections(path, []string{"server"}, []string{"sources", name})
	}
	if err != nil {
		return nil, nil, nil, err
	}
	spec := f.Source(name)
	if spec == nil {
		names := make([]string, 0, len(f.Sources))
		for _, s := range f.Sources {
			names = append(names, s.Name)
		}
		sort.Strings(names)
		return nil, nil, nil, fmt.Errorf("no source named %q in %s (sources: %s)", name, path, strings.Join(names, ", "))
	}
	src, err := spec.Config.NewSource()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("source %s: %w", name, err)
	}
	return f, spec, src, nil
}

// sourceArgs are the arguments of the commands that take a source and a
// payload: -c FILE --source NAME PAYLOAD.json.
type sourceArgs struct {
	config, source, payload string
}

// parseSourceArgs parses them, with the command's own flags added by extra.
func parseSourceArgs(name string, args []string, extra func(*flag.FlagSet)) (sourceArgs, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := configFlag(fs)
	source := fs.String("source", "", "source name")
	if extra != nil {
		extra(fs)
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return sourceArgs{}, err
	}
	if err := needConfig(*path); err != nil {
		return sourceArgs{}, err
	}
	if *source == "" || len(pos) != 1 {
		return sourceArgs{}, fmt.Errorf("%w: --source NAME and one payload file are required", errUsage)
	}
	return sourceArgs{config: *path, source: *source, payload: pos[0]}, nil
}

func cmdRoutesTest(args []string, stdout io.Writer) error {
	a, err := parseSourceArgs("routes test", args, nil)
	if err != nil {
		return err
	}
	f, _, src, err := loadSource(a.config, a.source, true)
	if err != nil {
		return err
	}
	rt, err := bridge.Build(f, nil)
	if err != nil {
		return err
	}
	body, err := os.ReadFile(a.payload)
	if err != nil {
		return err
	}
	now := time.Now()
	req, err := providerRequest(src, "", body, now)
	if err != nil {
		return err
	}
	evs, err := src.Convert(req)
	if err != nil {
		return fmt.Errorf("the payload does not convert (a provider would get 400): %w", err)
	}
	for i, ev := range evs {
		if ev.Time().IsZero() {
			ev.SetTime(now.UTC())
		}
		ev.SetExtension("bridgesource", a.source)
		pretty, _ := json.MarshalIndent(ev, "", "  ")
		fmt.Fprintf(stdout, "== event %d of %d\n%s\n", i+1, len(evs), pretty)
		routes, targets := rt.Router.Match(ev)
		if len(routes) == 0 {
			fmt.Fprintln(stdout, "-- matches no route (it would be counted and logged, not delivered)")
			continue
		}
		fmt.Fprintf(stdout, "-- routes: %s\n", strings.Join(routes, ", "))
		for _, name := range targets {
			b := rt.Sinks[name]
			fmt.Fprintf(stdout, "-- sink %s:\n", name)
			p, ok := b.Sink.(sinks.Previewer)
			if !ok {
				fmt.Fprintln(stdout, "   (this sink cannot preview)")
				continue
			}
			out, err := p.Preview(ev)
			if err != nil {
				fmt.Fprintf(stdout, "   error: %v\n", err)
				continue
			}
			fmt.Fprintf(stdout, "%s\n", out)
		}
	}
	for _, s := range f.Sinks {
		if !s.IsEnabled() {
			fmt.Fprintf(stdout, "(sink %s is disabled)\n", s.Name)
		}
	}
	return nil
}

// providerRequest is the POST of body as src's provider would send it at
// now: a JSON content type, then whatever the source's Signer sets (its
// signature, and the headers the provider adds, such as GitHub's event
// name or a Slack form's content type), so that send and routes test see
// the same request.
func providerRequest(src sources.Source, path string, body []byte, now time.Time) (*sources.Request, error) {
	req := &sources.Request{Method: http.MethodPost, Path: path, Header: http.Header{}, Body: body, ReceivedAt: now}
	req.Header.Set("Content-Type", "application/json")
	if s, ok := src.(sources.Signer); ok {
		if err := s.Sign(req); err != nil {
			return nil, fmt.Errorf("signing: %w", err)
		}
	}
	return req, nil
}

func cmdSend(ctx context.Context, args []string, stdout io.Writer) error {
	var to *string
	a, err := parseSourceArgs("send", args, func(fs *flag.FlagSet) {
		to = fs.String("to", "", "URL to post to (default: this config's listener and the source's path)")
	})
	if err != nil {
		return err
	}
	f, spec, src, err := loadSource(a.config, a.source, false)
	if err != nil {
		return err
	}
	body, err := os.ReadFile(a.payload)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	target := *to
	if target == "" {
		target = "http://" + dialAddr(f.Server.Listen) + spec.Common.Path
		if t := f.Server.TLS; t.Enabled() {
			// Its own listener: trust the certificate it serves, whoever
			// signed it, under the name it was issued for.
			tc, err := trustServed(t.CertFile)
			if err != nil {
				return fmt.Errorf("server.tls: %w", err)
			}
			target = "https://" + dialAddr(f.Server.Listen) + spec.Common.Path
			client.Transport = &http.Transport{TLSClientConfig: tc}
		}
	}
	if hm, ok := src.(sources.HandshakeMaker); ok {
		hreq, err := hm.MakeHandshake(time.Now())
		if err != nil {
			return fmt.Errorf("making the handshake: %w", err)
		}
		if _, err := do(ctx, client, target, hreq, stdout, "handshake"); err != nil {
			return err
		}
	}
	req, err := providerRequest(src, spec.Common.Path, body, time.Now())
	if err != nil {
		return err
	}
	status, err := do(ctx, client, target, req, stdout, "webhook")
	if err != nil {
		return err
	}
	if status < 200 || status > 299 {
		return fmt.Errorf("the bridge answered %d", status)
	}
	return nil
}

// trustServed is the TLS configuration of a client that trusts the
// certificate in certFile (its first PEM block) and nothing else, checked
// against the first name it was issued for, or its IP addresses when it
// names none: `bridge send` reaches its own listener by the listen address,
// not by the name in the certificate.
func trustServed(certFile string) (*tls.Config, error) {
	pemData, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(pemData)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", certFile)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if len(leaf.DNSNames) > 0 {
		tc.ServerName = leaf.DNSNames[0]
	}
	return tc, nil
}

func do(ctx context.Context, client *http.Client, target string, r *sources.Request, stdout io.Writer, what string) (int, error) {
	u := target
	if len(r.Query) > 0 {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + r.Query.Encode()
	}
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	hreq, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(r.Body))
	if err != nil {
		return 0, err
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			hreq.Header.Add(k, v)
		}
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return 0, fmt.Errorf("sending the %s: %w", what, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(stdout, "%s %s -> %s\n", method, target, resp.Status)
	if len(answer) > 0 {
		fmt.Fprintf(stdout, "%s\n", answer)
	}
	return resp.StatusCode, nil
}

// dialAddr turns a listen address (":8080", "0.0.0.0:8080") into one to dial.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// cmdVersion prints the version. It takes no flags, but parses them as
// every command does, so that --help describes it rather than printing the
// version.
func cmdVersion(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	printVersion(stdout)
	return nil
}

func printVersion(w io.Writer) {
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	fmt.Fprintf(w, "bridge %s (%s)\n", version, goVersion)
}
