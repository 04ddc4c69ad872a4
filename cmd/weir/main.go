// Command weir is the one binary of weir: it runs operators locally, builds
// and inspects modules, and measures the engine. Every role is a subcommand;
// `weir --help` lists them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit status. Errors are one
// line on stderr; a stack trace only with --debug.
func run(args []string, stdout, stderr io.Writer) (code int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	debugOn := hasFlag(args, "--debug")
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "weir: internal error: %v\n", r)
			if debugOn {
				stderr.Write(debug.Stack())
			} else {
				fmt.Fprintln(stderr, "weir: run again with --debug for a stack trace, and please report it")
			}
			code = 2
		}
	}()
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "weir: %v\n", err)
			return 2
		}
		fmt.Fprintf(stderr, "weir: %s\n", oneLine(err.Error(), debugOn))
		return 1
	}
	return 0
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || a == name+"=true" {
			return true
		}
	}
	return false
}

// oneLine keeps an error to one line unless debugging.
func oneLine(s string, full bool) string {
	if full {
		return s
	}
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " (more with --debug)"
	}
	return s
}
