package app

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"fiberauth/app/account"
	"fiberauth/app/config"
	"fiberauth/app/federation"
	"fiberauth/app/oidc"
	"fiberauth/app/token"
	"fiberauth/db"
)

// commandUsage lists the program's commands besides serving.
const commandUsage = `Usage: fiberauth [flags]                  serve (see fiberauth --help)
       fiberauth COMMAND [ARGS] [flags]   run a command and exit

Commands take the same settings as the server (DATABASE_PATH or
DATABASE_URL, from flags or the environment) and work while servers run on
the same database. U names an account by username or email.

  users list [--search S]       accounts, newest first; S matches part of
                                the username or email
  users create --username U --email E [--role R]
                                a new account (role basic, premium or
                                admin; basic by default); the password is
                                read from the terminal, or from the first
                                line of standard input, never an argument
  users set-role U R            give U the role R
  users end-sessions U          sign U out everywhere
  users delete U                delete U with its sessions and history
  limits clear U                forget U's failed sign-ins, so that it may
                                try again at once
  backup FILE                   SQLite: write a consistent copy of the
                                database to FILE (a new file) while it is
                                in use; PostgreSQL: use pg_dump
  migrate                       apply pending migrations and exit
  keys rotate                   make a new signing key: in the JWK set at
                                once, signing after KEY_PUBLISH_DELAY
  keys list                     each signing key with its state
  clients create --name N --redirect-uri U [--redirect-uri U2 ...]
          [--public] [--first-party] [--backchannel-logout-uri U]
          [--post-logout-redirect-uri U ...] [--scope S ...]
          [--id-token-alg RS256|EdDSA]
                                register an application that signs its
                                users in here (OpenID Connect); prints its
                                client_id and, once, its secret (none for
                                --public, which must use PKCE)
  clients list                  the registered applications
  clients rotate-secret ID      a new secret for application ID, shown once
  clients delete ID             delete application ID; its tokens end
  providers add --name N --issuer URL --client-id ID [--display-name D]
          [--scope S ...]
  providers add --name N --github --client-id ID [--display-name D]
                                let people sign in with an OpenID Connect
                                provider, or GitHub; the client secret is
                                read from the terminal, or from the first
                                line of standard input (an empty line for
                                none); prints the redirect URI to register
                                there
  providers list                the sign-in providers
  providers delete N            delete provider N and every link to it
  help                          this text

Every change made here is recorded in the admin audit list, as done by
"the command line". Exit status: 0 done, 1 failed, 2 bad command line.
`

// errUsage marks a command line that names no command, or a command with
// the wrong arguments.
var errUsage = errors.New("see: fiberauth help")

// usage is a command line error.
func usage(format string, a ...any) error {
	return fmt.Errorf("%s (%w)", fmt.Sprintf(format, a...), errUsage)
}

// ExitCode is the exit status for an error Run returned: 2 for a bad
// command line, 1 for anything else.
func ExitCode(err error) int {
	if errors.Is(err, errUsage) || errors.Is(err, config.ErrUsage) {
		return 2
	}
	return 1
}

// command is a parsed command line: its words, its arguments, its own
// flags (the last value of each, and every value of a repeated one in
// lists) and the server settings that follow.
type command struct {
	words    []string
	args     []string
	flags    map[string]string
	lists    map[string][]string
	settings []string
}

// commands lists each command: its words, how many arguments it takes,
// and its own flags.
var commands = []struct {
	words []string
	nargs int
	// flags are the command's own flags; those before the bar are
	// required; a name ending in "!" takes no value (--public).
	flags []string
	run   func(ctx context.Context, e *cmdEnv, c command) error
}{
	{[]string{"users", "list"}, 0, []string{"|", "search"}, usersList},
	{[]string{"users", "create"}, 0, []string{"username", "email", "|", "role"}, usersCreate},
	{[]string{"users", "set-role"}, 2, nil, usersSetRole},
	{[]string{"users", "end-sessions"}, 1, nil, usersEndSessions},
	{[]string{"users", "delete"}, 1, nil, usersDelete},
	{[]string{"limits", "clear"}, 1, nil, limitsClear},
	{[]string{"backup"}, 1, nil, backup},
	{[]string{"migrate"}, 0, nil, migrate},
	{[]string{"keys", "rotate"}, 0, nil, func(ctx context.Context, e *cmdEnv, _ command) error {
		return rotateKey(ctx, e, e.stdout)
	}},
	{[]string{"keys", "list"}, 0, nil, func(ctx context.Context, e *cmdEnv, _ command) error {
		return listKeys(ctx, e.cfg, e.store, e.stdout)
	}},
	{[]string{"clients", "create"}, 0, []string{"name", "redirect-uri", "|", "post-logout-redirect-uri", "backchannel-logout-uri",
		"scope", "id-token-alg", "public!", "first-party!"}, clientsCreate},
	{[]string{"clients", "list"}, 0, nil, clientsList},
	{[]string{"clients", "rotate-secret"}, 1, nil, clientsRotate},
	{[]string{"clients", "delete"}, 1, nil, clientsDelete},
	{[]string{"providers", "add"}, 0, []string{"name", "client-id", "|", "issuer", "github!", "display-name", "scope"}, providersAdd},
	{[]string{"providers", "list"}, 0, nil, providersList},
	{[]string{"providers", "delete"}, 1, nil, providersDelete},
}

// cmdEnv is what a command works with.
type cmdEnv struct {
	cfg    config.Config
	store  *db.Store
	stdin  io.Reader
	stdout io.Writer
	// server is built on demand, for commands that act on accounts.
	server *Server
}

// accounts returns the account core, as the server builds it.
func (e *cmdEnv) accounts(ctx context.Context) (*account.Service, error) {
	if e.server == nil {
		s, err := New(ctx, e.cfg, e.store, slog.New(slog.DiscardHandler))
		if err != nil {
			return nil, err
		}
		e.server = s
	}
	return e.server.acct, nil
}

// runCommand runs the command args names. Its output goes to stdout,
// problems to the returned error.
func runCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, commandUsage)
		return nil
	}
	for _, cmd := range commands {
		if len(args) < len(cmd.words) || !slices.Equal(args[:len(cmd.words)], cmd.words) {
			continue
		}
		name := strings.Join(cmd.words, " ")
		c, err := parseCommand(name, args[len(cmd.words):], cmd.nargs, cmd.flags)
		if err != nil {
			return err
		}
		c.words = cmd.words
		cfg, store, err := openForCommand(ctx, c.settings, getenv, stdout)
		if err != nil || store == nil {
			return err
		}
		e := &cmdEnv{cfg: cfg, store: store, stdin: stdin, stdout: stdout}
		defer func() {
			if e.server != nil {
				e.server.Close()
			}
			store.Close()
		}()
		return commandError(cmd.run(ctx, e, c))
	}
	for _, cmd := range commands {
		if len(cmd.words) > 1 && args[0] == cmd.words[0] {
			var subs []string
			for _, c := range commands {
				if c.words[0] == args[0] {
					subs = append(subs, c.words[1])
				}
			}
			return usage("%s needs one of: %s", args[0], strings.Join(subs, ", "))
		}
	}
	return usage("%q is not a command", args[0])
}

// parseCommand reads what follows a command's words: nargs arguments
// (after "--" when one starts with "-"), then its own flags (--name value or --name=value; those of own before
// "|" are required) and the server's settings, in any order.
func parseCommand(name string, rest []string, nargs int, own []string) (command, error) {
	c := command{flags: map[string]string{}, lists: map[string][]string{}}
	for len(c.args) < nargs && len(rest) > 0 {
		if rest[0] == "--" {
			// What follows is arguments, even when it starts with "-".
			rest = rest[1:]
			for len(c.args) < nargs && len(rest) > 0 {
				c.args, rest = append(c.args, rest[0]), rest[1:]
			}
			break
		}
		if strings.HasPrefix(rest[0], "-") {
			break
		}
		c.args, rest = append(c.args, rest[0]), rest[1:]
	}
	if len(c.args) < nargs {
		return c, usage("%s needs %d %s", name, nargs, map[bool]string{true: "argument", false: "arguments"}[nargs == 1])
	}
	for len(rest) > 0 {
		arg := rest[0]
		rest = rest[1:]
		flagName, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if !strings.HasPrefix(arg, "-") {
			return c, usage("%s: unexpected argument %q", name, arg)
		}
		if flagName != "" && slices.Contains(own, flagName+"!") {
			if hasValue {
				return c, usage("%s: --%s takes no value", name, flagName)
			}
			c.flags[flagName] = "true"
			continue
		}
		if flagName == "|" || !slices.Contains(own, flagName) {
			// A server setting, with its value.
			c.settings = append(c.settings, arg)
			if !hasValue && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
				c.settings, rest = append(c.settings, rest[0]), rest[1:]
			}
			continue
		}
		if !hasValue {
			if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
				// A flag is not a value (--client-id --github); a value
				// that starts with "-" is written --name=value.
				return c, usage("%s: --%s needs a value (write --%s=VALUE for one that starts with \"-\")", name, flagName, flagName)
			}
			value, rest = rest[0], rest[1:]
		}
		c.flags[flagName] = value
		c.lists[flagName] = append(c.lists[flagName], value)
	}
	var missing []string
	for _, f := range own {
		if f == "|" {
			break
		}
		if c.flags[f] == "" {
			missing = append(missing, "--"+f)
		}
	}
	if len(missing) > 0 {
		return c, usage("%s needs %s", name, strings.Join(missing, " and "))
	}
	return c, nil
}

// commandError words an account error for the terminal.
func commandError(err error) error {
	var e *account.Error
	if !errors.As(err, &e) {
		return err
	}
	switch e.Code {
	case account.EInvalid, account.EConflict:
		if len(e.Fields) > 0 {
			msgs := make([]string, 0, len(e.Fields))
			for _, f := range e.Fields {
				msgs = append(msgs, f.Field+": "+f.Message)
			}
			return errors.New(strings.Join(msgs, "; "))
		}
	case account.EInternal:
		if e.Err != nil {
			return e.Err
		}
	}
	return errors.New(e.Message)
}

func usersList(ctx context.Context, e *cmdEnv, c command) error {
	acct, err := e.accounts(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tUSERNAME\tEMAIL\tROLE\tVERIFIED\tTWO-FACTOR\tCREATED\tLAST SIGN-IN")
	yesNo := map[bool]string{true: "yes", false: "no"}
	for page := 1; ; page++ {
		p, err := acct.Users(ctx, c.flags["search"], page)
		if err != nil {
			return err
		}
		for _, u := range p.Users {
			last := "never"
			if !u.LastSignInAt.IsZero() {
				last = u.LastSignInAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Username, u.Email, u.Role,
				yesNo[u.EmailVerified], yesNo[u.MFAEnabled], u.CreatedAt.UTC().Format(time.RFC3339), last)
		}
		if page*account.AdminPageSize >= p.Total || len(p.Users) == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%d %s\n", p.Total, map[bool]string{true: "account", false: "accounts"}[p.Total == 1])
			return nil
		}
	}
}

func usersCreate(ctx context.Context, e *cmdEnv, c command) error {
	acct, err := e.accounts(ctx)
	if err != nil {
		return err
	}
	pw, err := readPassword(e.stdin, e.stdout)
	if err != nil {
		return err
	}
	r, err := acct.CreateAccount(ctx, account.CommandLine, commandClient, account.Registration{
		Username: c.flags["username"], Email: c.flags["email"], Password: pw, Role: c.flags["role"]})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created %s (id %d, role %s)\n", r.User.Username, r.User.ID, r.User.Role)
	return nil
}

// commandClient is the client of changes made from the command line.
var commandClient = account.Client{UserAgent: "fiberauth command line"}

// target finds the account a command names.
func (e *cmdEnv) target(ctx context.Context, login string) (*account.Service, db.User, error) {
	acct, err := e.accounts(ctx)
	if err != nil {
		return nil, db.User{}, err
	}
	u, err := acct.FindUser(ctx, login)
	return acct, u, err
}

func usersSetRole(ctx context.Context, e *cmdEnv, c command) error {
	acct, u, err := e.target(ctx, c.args[0])
	if err != nil {
		return err
	}
	if err := acct.SetRole(ctx, account.CommandLine, u.ID, c.args[1]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s is now %s (was %s)\n", u.Username, c.args[1], u.Role)
	return nil
}

func usersEndSessions(ctx context.Context, e *cmdEnv, c command) error {
	acct, u, err := e.target(ctx, c.args[0])
	if err != nil {
		return err
	}
	n, err := acct.EndUserSessions(ctx, account.CommandLine, u.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "ended %d %s of %s\n", n, map[bool]string{true: "session", false: "sessions"}[n == 1], u.Username)
	return nil
}

func usersDelete(ctx context.Context, e *cmdEnv, c command) error {
	acct, u, err := e.target(ctx, c.args[0])
	if err != nil {
		return err
	}
	if err := acct.RemoveUser(ctx, account.CommandLine, u.ID); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted %s\n", u.Username)
	return nil
}

func limitsClear(ctx context.Context, e *cmdEnv, c command) error {
	acct, u, err := e.target(ctx, c.args[0])
	if err != nil {
		return err
	}
	if err := acct.ClearUserLimits(ctx, account.CommandLine, u.ID); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "cleared the sign-in limits of %s\n", u.Username)
	return nil
}

func backup(ctx context.Context, e *cmdEnv, c command) error {
	if err := e.store.Backup(ctx, c.args[0]); err != nil {
		return err
	}
	// The copy holds every password hash and signing key: it is recorded.
	if err := e.audit(ctx, "backup", "database", "to "+c.args[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backed up %s to %s\n", e.store.Name(), c.args[0])
	return nil
}

func migrate(ctx context.Context, e *cmdEnv, _ command) error {
	// Opening the store applied what was pending.
	v, err := e.store.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if err := e.audit(ctx, "migrate", "database", fmt.Sprintf("schema version %d", v)); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s is at schema version %d\n", e.store.Name(), v)
	return nil
}

// audit records a change the command line made to the service itself in
// the audit list, as done by "the command line".
func (e *cmdEnv) audit(ctx context.Context, action, what, detail string) error {
	acct, err := e.accounts(ctx)
	if err != nil {
		return err
	}
	return acct.AuditService(ctx, account.CommandLine, action, what, detail)
}

// maxPasswordInput bounds a password read from standard input.
const maxPasswordInput = 4096

// readPassword reads a new password: typed twice, unechoed, on a terminal;
// otherwise the first line of stdin.
func readPassword(stdin io.Reader, stdout io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stdout, "Password: ")
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stdout, "Repeat it: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", err
		}
		if string(first) != string(again) {
			return "", errors.New("the two passwords differ")
		}
		return string(first), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, maxPasswordInput)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password: type it at the prompt, or give it as the first line of standard input")
	}
	return line, nil
}

// openForCommand reads the settings that follow a command and opens the
// database (applying pending migrations). store is nil when --help was
// asked for.
func openForCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (config.Config, *db.Store, error) {
	cfg, err := config.Parse(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return cfg, nil, nil
	}
	if err != nil {
		return cfg, nil, err
	}
	store, err := db.Open(ctx, db.Options{Path: cfg.DatabasePath, URL: cfg.DatabaseURL, MaxConns: 2,
		Log: slog.New(slog.DiscardHandler)})
	return cfg, store, err
}

// rotateKey makes a new signing key that signs after the publish delay,
// and records it in the audit list.
func rotateKey(ctx context.Context, e *cmdEnv, stdout io.Writer) error {
	cfg, store := e.cfg, e.store
	// The first key, if the server never started on this database.
	if _, err := loadKeys(ctx, store, time.Now()); err != nil {
		return err
	}
	now := time.Now()
	publish := now.Add(cfg.KeyPublishDelay)
	var made []token.Key
	for _, alg := range []struct {
		name string
		make func() ([]byte, error)
	}{{token.EdDSA, token.NewSeed}, {token.RS256, token.NewRSASeed}} {
		seed, err := alg.make()
		if err != nil {
			return err
		}
		sk := db.SigningKey{Alg: alg.name, Seed: seed, CreatedAt: now, PublishAt: publish}
		k, err := keyOf(sk)
		if err != nil {
			return err
		}
		sk.ID = k.ID
		if err := store.AddSigningKey(ctx, sk); err != nil {
			return err
		}
		made = append(made, k)
	}
	k := made[0]
	if err := e.audit(ctx, "rotate_key", "signing keys", "new keys "+made[0].ID+" (EdDSA) and "+made[1].ID+
		" (RS256), signing from "+k.PublishAt.UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new signing keys %s (EdDSA, access tokens) and %s (RS256, ID tokens): in the JWK set now, signing from %s (after KEY_PUBLISH_DELAY=%s)\n",
		made[0].ID, made[1].ID, k.PublishAt.UTC().Format(time.RFC3339), cfg.KeyPublishDelay)
	return nil
}

// listKeys prints every signing key with its state.
func listKeys(ctx context.Context, cfg config.Config, store *db.Store, stdout io.Writer) error {
	keys, err := loadKeys(ctx, store, time.Now())
	if err != nil {
		return err
	}
	m := token.NewManager(token.Config{Issuer: cfg.Issuer, Lifetime: cfg.TokenLifetime}, keys)
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KID\tALG\tSTATE\tCREATED\tSIGNS FROM\tRETIRED")
	for _, st := range m.States(time.Now()) {
		retired := "-"
		if !st.RetiredAt.IsZero() {
			retired = st.RetiredAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", st.ID, st.Alg, st.State, st.CreatedAt.UTC().Format(time.RFC3339),
			st.PublishAt.UTC().Format(time.RFC3339), retired)
	}
	return w.Flush()
}

// isCommand tells whether the first argument names a command rather than
// a flag of the server.
func isCommand(args []string) bool {
	return len(args) > 0 && !strings.HasPrefix(args[0], "-")
}

// provider returns the OpenID Connect provider, as the server builds it.
func (e *cmdEnv) provider(ctx context.Context) (*oidc.Provider, error) {
	if _, err := e.accounts(ctx); err != nil {
		return nil, err
	}
	return e.server.oidc, nil
}

func clientsCreate(ctx context.Context, e *cmdEnv, c command) error {
	p, err := e.provider(ctx)
	if err != nil {
		return err
	}
	var scopes []string
	for _, s := range c.lists["scope"] {
		scopes = append(scopes, strings.Fields(s)...)
	}
	cl, secret, err := p.CreateClient(ctx, account.CommandLine, oidc.ClientInput{Name: c.flags["name"], RedirectURIs: c.lists["redirect-uri"],
		PostLogoutRedirectURIs: c.lists["post-logout-redirect-uri"], BackchannelLogoutURI: c.flags["backchannel-logout-uri"],
		Scopes: scopes, IDTokenAlg: c.flags["id-token-alg"], Public: c.flags["public"] == "true", FirstParty: c.flags["first-party"] == "true"})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "client_id: %s\n", cl.ID)
	if secret != "" {
		fmt.Fprintf(e.stdout, "client_secret: %s\n(shown once: it is kept only as a hash)\n", secret)
	}
	return nil
}

func clientsList(ctx context.Context, e *cmdEnv, _ command) error {
	p, err := e.provider(ctx)
	if err != nil {
		return err
	}
	list, err := p.Clients(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CLIENT ID\tNAME\tKIND\tREDIRECT URIS\tSCOPES\tCREATED")
	for _, cl := range list {
		kind := "confidential"
		if cl.Public() {
			kind = "public"
		}
		if cl.FirstParty {
			kind += ", first-party"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", cl.ID, cl.Name, kind, strings.Join(cl.RedirectURIs, " "),
			strings.Join(cl.Scopes, " "), cl.CreatedAt.UTC().Format(time.RFC3339))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d %s\n", len(list), map[bool]string{true: "application", false: "applications"}[len(list) == 1])
	return nil
}

func clientsRotate(ctx context.Context, e *cmdEnv, c command) error {
	p, err := e.provider(ctx)
	if err != nil {
		return err
	}
	secret, err := p.RotateSecret(ctx, account.CommandLine, c.args[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "client_secret: %s\n(shown once; the old secret no longer works)\n", secret)
	return nil
}

func clientsDelete(ctx context.Context, e *cmdEnv, c command) error {
	p, err := e.provider(ctx)
	if err != nil {
		return err
	}
	if err := p.DeleteClient(ctx, account.CommandLine, c.args[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted application %s\n", c.args[0])
	return nil
}

// federation returns the sign-in provider engine, as the server builds it.
func (e *cmdEnv) federation(ctx context.Context) (*federation.Engine, error) {
	if _, err := e.accounts(ctx); err != nil {
		return nil, err
	}
	return e.server.fed, nil
}

func providersAdd(ctx context.Context, e *cmdEnv, c command) error {
	github := c.flags["github"] == "true"
	if github == (c.flags["issuer"] != "") {
		return usage("providers add needs --issuer URL (an OpenID Connect provider) or --github, not both")
	}
	f, err := e.federation(ctx)
	if err != nil {
		return err
	}
	secret, err := readSecret(e.stdin, e.stdout)
	if err != nil {
		return err
	}
	var scopes []string
	for _, s := range c.lists["scope"] {
		scopes = append(scopes, strings.Fields(s)...)
	}
	p, err := f.Add(ctx, account.CommandLine, federation.ProviderInput{Name: c.flags["name"], DisplayName: c.flags["display-name"],
		GitHub: github, Issuer: c.flags["issuer"], ClientID: c.flags["client-id"], ClientSecret: secret, Scopes: strings.Join(scopes, " ")})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "added %s (%s): the login page offers \"Continue with %s\"\n", p.Name, p.Kind, p.DisplayName)
	fmt.Fprintf(e.stdout, "redirect URI to register at the provider: %s\n", f.RedirectURI(p.Name))
	if err := f.Reachable(ctx, p); err != nil {
		fmt.Fprintf(e.stdout, "warning: %v; people see a page saying so until it answers\n", err)
	}
	return nil
}

// readSecret reads a client secret: unechoed on a terminal, otherwise the
// first line of stdin; empty for a provider that gives none (PKCE only).
func readSecret(stdin io.Reader, stdout io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stdout, "Client secret (empty for none): ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		return strings.TrimSpace(string(b)), err
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, maxPasswordInput)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the client secret from standard input: %w", err)
	}
	return strings.TrimSpace(line), nil
}

func providersList(ctx context.Context, e *cmdEnv, _ command) error {
	f, err := e.federation(ctx)
	if err != nil {
		return err
	}
	list, err := f.Providers(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tDISPLAY NAME\tKIND\tISSUER\tCLIENT ID\tREDIRECT URI\tCREATED")
	for _, p := range list {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.DisplayName, p.Kind, p.Issuer, p.ClientID, f.RedirectURI(p.Name),
			p.CreatedAt.UTC().Format(time.RFC3339))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d %s\n", len(list), map[bool]string{true: "provider", false: "providers"}[len(list) == 1])
	return nil
}

func providersDelete(ctx context.Context, e *cmdEnv, c command) error {
	f, err := e.federation(ctx)
	if err != nil {
		return err
	}
	d, err := f.Delete(ctx, account.CommandLine, c.args[0])
	if err != nil {
		return err
	}
	n := d.Stranded
	fmt.Fprintf(e.stdout, "deleted provider %s; %d %s signed in with it ended\n", c.args[0], d.SessionsEnded,
		map[bool]string{true: "session", false: "sessions"}[d.SessionsEnded == 1])
	if n > 0 {
		fmt.Fprintf(e.stdout, "%d %s no other way to sign in: a password reset by mail gives them one\n", n,
			map[bool]string{true: "account has", false: "accounts have"}[n == 1])
	}
	return nil
}
