// Command bridge receives webhooks from chat, support and lead-capture
// tools, verifies each as its provider documents, turns it into a CloudEvent,
// queues it durably, answers the provider, and delivers it through YAML
// routes to Kafka, Slack, CRM endpoints and files.
//
//	bridge run -c FILE                 serve until SIGTERM/SIGINT; SIGHUP reloads FILE
//	bridge validate -c FILE            check FILE, print every mistake with its line
//	bridge routes test -c FILE --source NAME PAYLOAD.json
//	                                   show the CloudEvent, the routes it matches and what each sink would get
//	bridge send -c FILE --source NAME PAYLOAD.json [--to URL]
//	                                   sign PAYLOAD as the provider would and POST it
//	bridge replay -c FILE [--sink NAME] [--since 2h] [--before 1h] [--filter F] [--to SINK] [--dry-run]
//	                                   queue dead-lettered events again, through the running bridge's admin API
//	bridge discard -c FILE [--sink NAME] [--since 2h] [--before 720h] [--filter F] [--dry-run]
//	                                   remove dead letters for good, through the admin API
//	bridge version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	_ "github.com/hookbridge/hookbridge/sinks/all"
	_ "github.com/hookbridge/hookbridge/sources/all"
)

// commands are the subcommands: how each is called, and what it does.
var commands = []struct{ name, synopsis, about string }{
	{"run", "-c FILE", "Serve webhooks until SIGTERM or SIGINT. SIGHUP, or an edit of FILE, reloads\nFILE; a bad edit is logged and the running config stays."},
	{"validate", "-c FILE", "Check FILE and print every mistake with its file:line:column."},
	{"routes test", "-c FILE --source NAME PAYLOAD.json", "Show the CloudEvent(s) PAYLOAD becomes from source NAME, the routes each\nmatches and what each sink would get. Nothing is sent."},
	{"send", "-c FILE --source NAME PAYLOAD.json [--to URL]", "Sign PAYLOAD as source NAME's provider would and POST it to the bridge\n(after the provider's GET handshake, where it has one)."},
	{"replay", "-c FILE [--sink NAME] [--since|--before DURATION|TIME] [--filter F] [--to SINK] [--dry-run] [--admin URL]", "Queue dead-lettered events again, through the running bridge's admin API:\nto the sink that gave up on them, or to --to."},
	{"discard", "-c FILE [--sink NAME] [--since|--before DURATION|TIME] [--filter F] [--dry-run] [--admin URL]", "Remove dead letters for good, through the running bridge's admin API."},
	{"version", "", "Print the version and how it was built."},
}

// usage is every command's synopsis, and how to ask for one's flags.
var usage = func() string {
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %s\n", strings.TrimSpace("bridge "+c.name+" "+c.synopsis))
	}
	b.WriteString("\nbridge COMMAND --help describes a command and its flags.\n")
	return b.String()
}()

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage is reported as a usage error (exit 2).
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stderr)
	case "validate":
		err = cmdValidate(args[1:], stdout)
	case "routes":
		if len(args) < 2 || args[1] != "test" {
			err = fmt.Errorf("%w: bridge routes test -c FILE --source NAME PAYLOAD.json", errUsage)
			break
		}
		err = cmdRoutesTest(args[2:], stdout)
	case "send":
		err = cmdSend(context.Background(), args[1:], stdout)
	case "replay":
		err = cmdReplay(context.Background(), args[1:], stdout)
	case "discard":
		err = cmdDiscard(context.Background(), args[1:], stdout)
	case "version", "--version", "-v":
		err = cmdVersion(args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	var help *helpRequest
	switch {
	case err == nil:
		return 0
	case errors.As(err, &help):
		help.print(stdout)
		return 0
	case errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stderr, "bridge: %v\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "bridge: %v\n", err)
		return 1
	}
}

// parseFlags parses flags that may come before or after positional
// arguments. -h or --help anywhere is a *helpRequest for the command.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &helpRequest{fs}
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// helpRequest is a command's --help: its synopsis, what it does, and its
// flags.
type helpRequest struct{ fs *flag.FlagSet }

func (h *helpRequest) Error() string { return "help requested" }

func (h *helpRequest) print(w io.Writer) {
	for _, c := range commands {
		if c.name == h.fs.Name() {
			fmt.Fprintf(w, "usage: %s\n\n%s\n", strings.TrimSpace("bridge "+c.name+" "+c.synopsis), c.about)
		}
	}
	flags := 0
	h.fs.VisitAll(func(*flag.Flag) { flags++ })
	if flags == 0 {
		return // bridge version: no flags to list under a heading
	}
	fmt.Fprint(w, "\nflags:\n")
	h.fs.SetOutput(w)
	h.fs.PrintDefaults()
}
