package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/weirstream/weir/internal/client"
	"github.com/weirstream/weir/internal/modbuild"
)

// app is what every command shares: the writers and the configuration.
type app struct {
	stdout, stderr io.Writer
	// cfg resolves settings with the precedence flags > WEIR_* environment
	// > config file > defaults. It is bound to the flags of the command
	// being run.
	cfg *viper.Viper
	// term and logger print module logs during `weir run` (logs.go).
	term   *terminal
	logger *slog.Logger
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "weir",
		Short: "weir: a stateful stream processor whose operators are WebAssembly modules",
		Long: `weir runs dataflow jobs whose operators are WebAssembly modules written in any
language (Go, C and AssemblyScript SDKs included), with keyed state, timers and event time.

Start here:
  weir module init --lang go ./myop     a ready-to-build operator template
  weir module build ./myop              compile it to ./myop/myop.wasm
  weir module test ./myop/myop.wasm --operator upper --input ./myop/sample.jsonl
  weir bench abi                        how fast records cross the WebAssembly boundary

Settings come from flags, then WEIR_* environment variables (WEIR_CACHE_DIR,
WEIR_OUTPUT, ...), then the config file (--config, default
$XDG_CONFIG_HOME/weir/config.yaml), then defaults.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.loadConfig(cmd)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	pf := root.PersistentFlags()
	pf.String("config", "", "config file (YAML, JSON or TOML)")
	pf.StringP("output", "o", "text", "output format: text or json")
	pf.String("cache-dir", modbuild.DefaultCacheDir(), "where compiled modules and builds are cached")
	pf.Bool("debug", false, "print full errors and stack traces")
	pf.String("coordinator", client.DefaultURL, "the coordinator's REST API, for job, module and cluster commands (WEIR_COORDINATOR)")
	root.AddCommand(newRunCmd(a), newJobCmd(a), newModuleCmd(a), newConnectorsCmd(a), newBenchCmd(a), newVersionCmd(a), newClusterCmd(a), newCoordinatorCmd(a), newWorkerCmd(a), newSavepointCmd(a))
	return root
}

// loadConfig binds the running command's flags to a fresh viper.
func (a *app) loadConfig(cmd *cobra.Command) error {
	v := viper.New()
	v.SetEnvPrefix("WEIR")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	var bindErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err := v.BindPFlag(f.Name, f); err != nil && bindErr == nil {
			bindErr = err
		}
	})
	if bindErr != nil {
		return bindErr
	}
	file := v.GetString("config")
	if file == "" {
		if d, err := os.UserConfigDir(); err == nil {
			def := filepath.Join(d, "weir", "config.yaml")
			if _, err := os.Stat(def); err == nil {
				file = def
			}
		}
	}
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("reading config file %s: %w", file, err)
		}
	}
	a.cfg = v
	switch o := v.GetString("output"); o {
	case "text", "json":
	default:
		return usagef("--output %q: want text or json", o)
	}
	return nil
}

func (a *app) jsonOut() bool { return a.cfg.GetString("output") == "json" }

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// version is set by the release build with -ldflags "-X main.version=...".
var version = "dev"

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print weir's version and the ABI version it speaks",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if a.jsonOut() {
				return a.printJSON(map[string]any{"version": version, "abi": abiVersion()})
			}
			fmt.Fprintf(a.stdout, "weir %s (operator ABI v%d)\n", version, abiVersion())
			return nil
		},
	}
}

var errNoInput = errors.New("no input")
