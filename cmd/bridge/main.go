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

	_ "github.com/hookbridge/hookbridge/sinks/all"
	_ "github.com/hookbridge/hookbridge/sources/all"
)

const usage = `usage:
  bridge run -c FILE
  bridge validate -c FILE
  bridge routes test -c FILE --source NAME PAYLOAD.json
  bridge send -c FILE --source NAME PAYLOAD.json [--to URL]
  bridge replay -c FILE [--sink NAME] [--since|--before DURATION|TIME] [--filter F] [--to SINK] [--dry-run] [--admin URL]
  bridge discard -c FILE [--sink NAME] [--since|--before DURATION|TIME] [--filter F] [--dry-run] [--admin URL]
  bridge version
`

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
		printVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stderr, "bridge: %v\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "bridge: %v\n", err)
		return 1
	}
}

// parseFlags parses flags that may come before or after positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
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
