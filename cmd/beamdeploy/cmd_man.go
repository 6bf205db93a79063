package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// The man pages are generated from the CLI definition (beamdeploy(1)) and
// from configReference (beamdeploy.json(5)), so that they cannot drift
// from --help and the config code; TestManPages checks both.

// manDate is the date in the pages' headers: SOURCE_DATE_EPOCH when set
// (reproducible package builds), else today.
func manDate() string {
	t := time.Now()
	if s, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		t = time.Unix(s, 0)
	}
	return t.UTC().Format("2006-01-02")
}

// roff escapes text for a roff line: backslashes, and a leading dot or
// quote that roff would take for a request.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffText writes paragraphs of plain text: blank lines separate them.
func roffText(b *strings.Builder, text string) {
	first := true
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if !first {
			b.WriteString(".PP\n")
		}
		first = false
		for _, l := range strings.Split(para, "\n") {
			b.WriteString(roff(strings.TrimSpace(l)) + "\n")
		}
	}
}

// roffExample writes lines as a literal block.
func roffExample(b *strings.Builder, lines []string) {
	b.WriteString(".PP\n.RS 4\n.nf\n")
	for _, l := range lines {
		b.WriteString(roff(strings.TrimSpace(l)) + "\n")
	}
	b.WriteString(".fi\n.RE\n")
}

// splitDescription separates a command's description into its text and
// its examples; the EXIT STATUS part is the page's own section.
func splitDescription(d string) (text string, examples []string) {
	d, _, _ = strings.Cut(d, exitStatusHelp)
	text, ex, _ := strings.Cut(d, "EXAMPLES:")
	for _, l := range strings.Split(ex, "\n") {
		if strings.TrimSpace(l) != "" {
			examples = append(examples, l)
		}
	}
	return strings.TrimSpace(text), examples
}

// flagLine is a flag's term in an option list: names and value.
func flagLine(f cli.Flag) string {
	var names []string
	for _, n := range f.Names() {
		dash := "--"
		if len(n) == 1 {
			dash = "-"
		}
		names = append(names, `\fB`+roff(dash+n)+`\fR`)
	}
	s := strings.Join(names, ", ")
	if tv, ok := f.(interface{ TakesValue() bool }); ok && tv.TakesValue() {
		s += ` \fIVALUE\fR`
	}
	return s
}

// flagHelp is a flag's description, with its default and environment.
func flagHelp(f cli.Flag) string {
	var s string
	if u, ok := f.(interface{ GetUsage() string }); ok {
		s = u.GetUsage()
	}
	if d, ok := f.(interface{ GetDefaultText() string }); ok {
		if v := d.GetDefaultText(); v != "" && v != `""` && v != "false" && v != "[]" && v != "0s" {
			s += " (default: " + strings.Trim(v, `"`) + ")"
		}
	}
	if e, ok := f.(interface{ GetEnvVars() []string }); ok && len(e.GetEnvVars()) > 0 {
		s += "; environment: " + strings.Join(e.GetEnvVars(), ", ")
	}
	return s
}

func writeFlags(b *strings.Builder, flags []cli.Flag) {
	for _, f := range flags {
		fmt.Fprintf(b, ".TP\n%s\n%s\n", flagLine(f), roff(flagHelp(f)))
	}
}

// instanceEnvironment is what the parent sets for the app's instances.
var instanceEnvironment = [][2]string{
	{"BEAM_DEPLOY", "1: the app runs under beamdeploy (the SDK's Enabled)"},
	{"BEAMDEPLOY_APP", "the app's name"},
	{"BEAMDEPLOY_UNIT", "the instance's unit, APP@blue.service or APP@green.service"},
	{"BEAMDEPLOY_COLOR", "blue or green"},
	{"BEAMDEPLOY_RELEASE", "the release the instance runs"},
	{"BEAMDEPLOY_SOCKET", "the parent's control socket, for the handoff store, peers and hot upgrades"},
	{"BEAMDEPLOY_DRAIN_TIMEOUT", "the instance's drain timeout; the SDK's Serve ends its drain before it"},
	{"LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES", "the listening sockets, from fd 3 (sd_listen_fds(3))"},
	{"NOTIFY_SOCKET", "where READY=1 goes (sd_notify(3))"},
	{"STATE_DIRECTORY", "with a dynamic user, the one directory the app may write"},
}

var manFiles = [][2]string{
	{"/etc/beamdeploy/APP.json", "the app's configuration; see beamdeploy.json(5)"},
	{"/etc/systemd/system/APP.socket, APP.service", "the units init writes: the listening sockets and the parent"},
	{"/etc/systemd/system/APP@.service.d/*.conf", "your drop-ins for the instances (MemoryMax=, Environment=, hardening)"},
	{"/var/lib/beamdeploy/APP/releases/VERSION", "staged releases, owned by root, not writable by the app"},
	{"/var/lib/beamdeploy/APP/state.json, handoff.json", "the parent's state and the handoff store (mode 0600)"},
	{"/var/lib/beamdeploy/APP/hot/UNIT.json", "the release a hot-upgraded unit runs after a restart"},
	{"/var/lib/private/beamdeploy/APP/data", "$STATE_DIRECTORY of a dynamic-user app"},
	{"/run/beamdeploy/APP/control.sock", "the parent's control API (HTTP/JSON)"},
	{"/run/beamdeploy/APP/fds.sock", "the fd broker on systemd before 257"},
}

var manExitStatus = [][2]string{
	{"0", "success"},
	{"1", "failure"},
	{"2", "usage error: unknown command or flag, bad value, missing argument or one too many"},
	{"3", "the swap failed and was rolled back: the old release keeps serving"},
	{"4", "the parent (APP.service) is not running"},
	{"5", "another swap is in progress"},
	{"6", "the release is in use (serving, draining or being started): --force cannot replace it"},
	{"7", "the app is locked (beamdeploy lock): nothing was swapped; beamdeploy unlock APP lifts it"},
	{"130", "interrupted (Ctrl-C before the cutover rolls the swap back)"},
}

func writeTable(b *strings.Builder, rows [][2]string) {
	for _, r := range rows {
		fmt.Fprintf(b, ".TP\n\\fB%s\\fR\n%s\n", roff(r[0]), roff(r[1]))
	}
}

// manPage renders beamdeploy(1).
func manPage(app *cli.App) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH BEAMDEPLOY 1 \"%s\" \"beamdeploy %s\" \"User Commands\"\n", manDate(), roff(version))
	b.WriteString(".SH NAME\nbeamdeploy \\- " + roff(app.Usage) + "\n")
	b.WriteString(".SH SYNOPSIS\n.B beamdeploy\n[\\fB\\-\\-json\\fR] [\\fB\\-\\-log\\-level\\fR \\fILEVEL\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]\n")
	b.WriteString(".SH DESCRIPTION\n")
	text, _ := splitDescription(app.Description)
	roffText(&b, text)
	b.WriteString(".PP\nFlags may stand anywhere among a command's arguments; \\fB\\-\\-json\\fR before or after the command; " +
		"\\fB\\-\\-help\\fR anywhere shows the command's help. " +
		"With \\fB\\-\\-json\\fR, results are JSON objects with a message_type on standard output, and errors a JSON object " +
		"with message_type exit_error on standard error.\n")
	b.WriteString(".SH COMMANDS\n")
	for _, c := range app.Commands {
		if c.Hidden || c.Name == "help" {
			continue
		}
		usage := c.UsageText
		if usage == "" {
			usage = "beamdeploy " + c.Name
		}
		fmt.Fprintf(&b, ".SS \"%s\"\n", strings.ReplaceAll(roff(usage), `"`, `\(dq`))
		roffText(&b, c.Usage+".")
		text, examples := splitDescription(c.Description)
		if text != "" {
			b.WriteString(".PP\n")
			roffText(&b, text)
		}
		if len(c.Flags) > 0 {
			writeFlags(&b, c.Flags)
		}
		if len(examples) > 0 {
			b.WriteString(".PP\nExamples:\n")
			roffExample(&b, examples)
		}
	}
	b.WriteString(".SH GLOBAL OPTIONS\n")
	writeFlags(&b, app.Flags)
	b.WriteString(".SH ENVIRONMENT\n")
	writeTable(&b, envOfFlags(app))
	b.WriteString(".PP\nInstances of the app get:\n")
	writeTable(&b, instanceEnvironment)
	b.WriteString(".SH FILES\n")
	writeTable(&b, manFiles)
	b.WriteString(".SH EXIT STATUS\n")
	writeTable(&b, manExitStatus)
	b.WriteString(".SH SEE ALSO\n\\fBbeamdeploy.json\\fR(5), \\fBsystemd.socket\\fR(5), \\fBsystemd.service\\fR(5), " +
		"\\fBsystemd.exec\\fR(5), \\fBsd_notify\\fR(3), \\fBsd_listen_fds\\fR(3), \\fBjournalctl\\fR(1)\n.PP\n" +
		"/usr/share/doc/beamdeploy/README.md\n")
	return b.String()
}

// envOfFlags lists every environment variable a flag reads, with the
// commands that read it.
func envOfFlags(app *cli.App) [][2]string {
	users := map[string][]string{}
	help := map[string]string{}
	add := func(cmd string, flags []cli.Flag) {
		for _, f := range flags {
			e, ok := f.(interface{ GetEnvVars() []string })
			if !ok {
				continue
			}
			for _, v := range e.GetEnvVars() {
				users[v] = append(users[v], cmd)
				if u, ok := f.(interface{ GetUsage() string }); ok && help[v] == "" {
					help[v] = "--" + f.Names()[0] + ": " + u.GetUsage()
				}
			}
		}
	}
	add("every command", app.Flags)
	for _, c := range app.Commands {
		if !c.Hidden {
			add(c.Name, c.Flags)
		}
	}
	names := make([]string, 0, len(users))
	for v := range users {
		names = append(names, v)
	}
	sort.Strings(names)
	var rows [][2]string
	for _, v := range names {
		rows = append(rows, [2]string{v, help[v] + " (" + strings.Join(users[v], ", ") + ")"})
	}
	return rows
}

// configReference documents every field of /etc/beamdeploy/APP.json, in
// file order; TestManPages checks it against config.Config.
var configReference = [][2]string{
	{"app", "(string, required) the app's name; must be the file's name without .json."},
	{"listen", "(list of strings, required) the addresses APP.socket listens on, as ListenStream= takes them: 8080, 127.0.0.1:8080, [::1]:8080, /run/APP.sock. The socket unit is written by init; edit it there too."},
	{"exec", "(list of strings, required) the app's command line; a relative program path is relative to the release root (bin/hello). A release's beamdeploy.json manifest may name its own command."},
	{"user", "(string) who the instances run as: \"dynamic\" (what init writes: a user systemd allocates for the app, DynamicUser=yes, which may write only into $STATE_DIRECTORY), \"root\", or an existing user. Absent: root (configurations written before dynamic users keep running as they did; check warns)."},
	{"ready_timeout", "(duration, default 60s) how long a new instance may take to send READY=1 before the swap is rolled back."},
	{"drain_timeout", "(duration, default 30s) how long an old instance may take to exit after SIGTERM before it is killed."},
	{"settle", "(duration, default 500ms) how long a new instance must keep running after READY=1 before the old one is stopped; one that dies within it rolls the swap back. \"0s\" turns it off."},
	{"keep_releases", "(number, default 5) how many deployed releases retention keeps; the active, draining and previous releases and releases never deployed are always kept."},
	{"hooks.before_cutover", "(list of strings) a command (absolute path first) run once the new instance is ready, before the old one is stopped; a non-zero exit or a timeout rolls the swap back."},
	{"hooks.after_cutover", "(list of strings) a command run after the old instance stopped; its failure is reported and undoes nothing."},
	{"hooks.timeout", "(duration, default 30s) bounds each hook: its whole process group gets SIGTERM, then SIGKILL 2 s later."},
	{"hooks.user", "(string) \"root\" or a user name to run the hooks as; default: the app's user (for a dynamic user, the new instance's uid and gid)."},
}

// configManPage renders beamdeploy.json(5).
func configManPage() string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH BEAMDEPLOY.JSON 5 \"%s\" \"beamdeploy %s\" \"File Formats\"\n", manDate(), roff(version))
	b.WriteString(".SH NAME\nbeamdeploy.json \\- configuration of an app managed by beamdeploy\n")
	b.WriteString(".SH SYNOPSIS\n/etc/beamdeploy/\\fIAPP\\fR.json\n")
	b.WriteString(".SH DESCRIPTION\n")
	roffText(&b, "One JSON object per app, written by beamdeploy init and read by the app's parent (APP.service) when it starts. "+
		"To apply a change, restart the parent: systemctl restart APP. The app keeps running and the change applies from the next swap "+
		"(beamdeploy reload APP swaps at once). beamdeploy check APP validates the file first.\n\n"+
		"Unknown fields are errors. Errors name the line and column. Durations are strings such as \"30s\", \"1m30s\" or \"500ms\".")
	b.WriteString(".SH FIELDS\n")
	writeTable(&b, configReference)
	b.WriteString(".SH EXAMPLE\n")
	roffExample(&b, strings.Split(`{
  "app": "hello",
  "listen": ["127.0.0.1:8080"],
  "exec": ["bin/hello"],
  "user": "dynamic",
  "ready_timeout": "1m0s",
  "drain_timeout": "30s",
  "hooks": {
    "before_cutover": ["/usr/local/bin/smoke-test"],
    "timeout": "10s"
  }
}`, "\n"))
	b.WriteString(".SH SEE ALSO\n\\fBbeamdeploy\\fR(1), \\fBsystemd.socket\\fR(5), \\fBsystemd.exec\\fR(5)\n")
	return b.String()
}
