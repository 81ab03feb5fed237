// Command drover is Drover's CLI: it validates recipes, starts runbooks and
// queries them through Temporal, and runs the embedded local dev stack.
//
// Exit codes: 0 success; 1 operational error; 2 bad usage or invalid input
// (nothing was started); 3 the command ran but found something down, a
// runbook ended other than completed (aborted, rolled back, failed) or had
// its approval refused, or a drill did not pass.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `drover — disaster-recovery runbooks on Temporal

usage:
  drover validate -f RECIPE                 check a recipe; print every problem with its field path
  drover status   -f RECIPE [--sites a,b] [--json] [--timeout D]
                                            run the SiteStatus workflow and print its table
  drover replication start|status|pause|resume|stop -f RECIPE [--from SITE --to SITE]
                                            run and steer the ReplicationSupervisor of each stream
  drover switchover|failover|failback -f RECIPE --to SITE [--from SITE] [--app A] [--approve-by NAME]
                  [--approval-timeout D] [--dry-run] [--max-lag D] [--catch-up-timeout D] [--dns-timeout D]
                  [--reason TEXT] [--no-reverse] [--json] [--detach]
                                            run a runbook (one per app at a time) and print its report
  drover runbook status  --app A [--json]   the app's current (or last) runbook and its steps so far
  drover runbook report  --app A [--run-id ID] [--wait] [--json]
                                            the report of the last (or given) runbook run
  drover runbook approve --app A --by NAME [--reject] [--comment TEXT]
                                            decide a runbook's approval gate
  drover clone -f RECIPE --to SITE [--from SITE] [--app A] [--provider local|aws|openstack] [--json] [--detach]
                                            build a site from the recipe as a consistent, replicating copy (CloneSite)
  drover drill -f RECIPE [--app A] [--site SITE] [--address IP] [--disruptive] [--reason TEXT]
                  [--report-dir DIR] [--json] [--detach]
                                            prove the recovery plan on an isolated copy (Drill); exit 3 if it fails
  drover schedule drill -f RECIPE --cron "0 3 * * SAT" [the drill's flags] [--id ID] [--catchup-window 1h]
                  [--paused] [--note TEXT]  run drills on a Temporal Schedule (cron in UTC)
  drover schedule list [--app A] [--json]   the drill schedules: cron, paused, next run, last drill
  drover schedule pause|unpause --id ID [--note TEXT]
  drover schedule delete|trigger --id ID    remove a schedule; start its drill now
  drover monitor start -f RECIPE [--primary SITE] [--interval D] [--threshold N] [--cooldown D]
                                            run the app's HealthMonitor (failover only if policy.auto_failover)
  drover monitor status|stop --app A [--json]
                                            its per-site health and last decision; terminate it
  drover webhook -f RECIPE --listen ADDR [--tls-cert F --tls-key F] [--max-body N] [--cooldown D]
                                            serve Alertmanager's webhook: alerts start runbooks per the recipe's alerts.routes
  drover codec-server [--listen ADDR] [--codec-key REF] [--cors-origin URL] [--auth-token REF] [--tls-cert F --tls-key F]
                                            serve /encode and /decode so the Temporal UI shows encrypted payloads
  drover dev up     [flags]                 start the local stack (Temporal, BIND9, sites, workers)
  drover dev down   [--state-dir DIR]       stop exactly what dev up started
  drover dev status [--state-dir DIR]       show the local stack's processes
  drover version

Temporal connection: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
TEMPORAL_TLS_* (the SDK's environment configuration); default 127.0.0.1:7233.
Payload encryption: DROVER_CODEC_KEY=env:NAME or file:/path (the key ring; off when unset).
Run "drover COMMAND -h" for a command's flags.
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one CLI command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "status":
		return cmdStatus(ctx, args[1:], stdout, stderr)
	case "dev":
		return cmdDev(ctx, args[1:], stdout, stderr)
	case "replication":
		return cmdReplication(ctx, args[1:], stdout, stderr)
	case "switchover", "failover", "failback":
		return cmdRunbookStart(ctx, args[0], args[1:], stdout, stderr)
	case "runbook":
		return cmdRunbook(ctx, args[1:], stdout, stderr)
	case "monitor":
		return cmdMonitor(ctx, args[1:], stdout, stderr)
	case "clone":
		return cmdClone(ctx, args[1:], stdout, stderr)
	case "webhook":
		return cmdWebhook(ctx, args[1:], stdout, stderr)
	case "codec-server":
		return cmdCodecServer(ctx, args[1:], stdout, stderr)
	case "drill":
		return cmdDrill(ctx, args[1:], stdout, stderr)
	case "schedule":
		return cmdSchedule(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "drover", version)
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "drover: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// subcommand starts `drover GROUP ACTION [flags]`: the action, the name the
// command's messages begin with ("drover GROUP ACTION") and an empty flag
// set printing to stderr. Without an action it prints what the group wants
// and reports false (exit 2).
func subcommand(group, want string, args []string, stderr io.Writer) (action, name string, fs *flag.FlagSet, ok bool) {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "drover %s: want %s\n", group, want)
		return "", "", nil, false
	}
	action = args[0]
	fs = flag.NewFlagSet(group+" "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return action, "drover " + group + " " + action, fs, true
}
