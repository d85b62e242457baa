// Command fiberauth is a sign-in service for browsers and API clients:
// server-rendered forms with a session cookie, and an OAuth2 password-grant
// token endpoint for API clients.
package main

import (
	"context"
	"fmt"
	"os"

	"fiberauth/app"
)

func main() {
	if err := app.Run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "fiberauth:", err)
		os.Exit(app.ExitCode(err))
	}
}
