package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"fiberauth/app/config"
	"fiberauth/app/token"
	"fiberauth/db"
)

// commandUsage lists the program's commands besides serving.
const commandUsage = `Usage: fiberauth [flags]            serve (see fiberauth --help)
       fiberauth COMMAND [flags]    run a command and exit

Commands (they take the same settings as the server, from flags or the
environment, and work while a server runs on the same database):

  keys rotate    make a new signing key: in the JWK set at once, signing
                 after KEY_PUBLISH_DELAY
  keys list      each signing key with its state
  help           this text
`

// errUsage is returned for a command line that names no command.
var errUsage = errors.New("unknown command (see: fiberauth help)")

// runCommand runs the command args names. Its output goes to stdout,
// problems to the returned error.
func runCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, commandUsage)
		return nil
	case "keys":
		if len(args) < 2 {
			return errors.New("keys needs a subcommand: rotate or list")
		}
		cfg, store, err := openForCommand(ctx, args[2:], getenv, stdout)
		if err != nil || store == nil {
			return err
		}
		defer store.Close()
		switch args[1] {
		case "rotate":
			return rotateKey(ctx, cfg, store, stdout)
		case "list":
			return listKeys(ctx, cfg, store, stdout)
		}
		return fmt.Errorf("keys %s: unknown subcommand; use rotate or list", args[1])
	}
	return fmt.Errorf("%q: %w", args[0], errUsage)
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

// rotateKey makes a new signing key that signs after the publish delay.
func rotateKey(ctx context.Context, cfg config.Config, store *db.Store, stdout io.Writer) error {
	// The first key, if the server never started on this database.
	if _, err := loadKeys(ctx, store, time.Now()); err != nil {
		return err
	}
	seed, err := token.NewSeed()
	if err != nil {
		return err
	}
	now := time.Now()
	k, err := token.NewKey(seed, now, now.Add(cfg.KeyPublishDelay))
	if err != nil {
		return err
	}
	if err := store.AddSigningKey(ctx, db.SigningKey{ID: k.ID, Seed: seed, CreatedAt: k.CreatedAt, PublishAt: k.PublishAt}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new signing key %s: in the JWK set now, signing from %s (after KEY_PUBLISH_DELAY=%s)\n",
		k.ID, k.PublishAt.UTC().Format(time.RFC3339), cfg.KeyPublishDelay)
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
	fmt.Fprintln(w, "KID\tSTATE\tCREATED\tSIGNS FROM\tRETIRED")
	for _, st := range m.States(time.Now()) {
		retired := "-"
		if !st.RetiredAt.IsZero() {
			retired = st.RetiredAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", st.ID, st.State, st.CreatedAt.UTC().Format(time.RFC3339),
			st.PublishAt.UTC().Format(time.RFC3339), retired)
	}
	return w.Flush()
}

// isCommand tells whether the first argument names a command rather than
// a flag of the server.
func isCommand(args []string) bool {
	return len(args) > 0 && !strings.HasPrefix(args[0], "-")
}
