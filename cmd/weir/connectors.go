package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/internal/connspec"
)

func newConnectorsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "connectors [NAME]",
		Short: "List the built-in sources and sinks, or show one connector's options",
		Long: `Without NAME, lists every built-in connector with its kind and what it does.
With NAME, shows the connector's options: type, default, whether required,
allowed values and help. A source and a sink may share a name (file): both are
shown. The same reference is in docs/connectors.md.

  weir connectors
  weir connectors datagen
  weir connectors nexmark --output json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return a.listConnectors()
			}
			return a.showConnector(args[0])
		},
	}
}

func (a *app) listConnectors() error {
	all := connspec.All()
	if a.jsonOut() {
		return a.printJSON(all)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tDESCRIPTION")
	for _, s := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Kind, firstSentence(s.Help))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, "\nweir connectors NAME shows a connector's options.")
	return nil
}

func (a *app) showConnector(name string) error {
	var specs []*connspec.Spec
	for _, k := range []connspec.Kind{connspec.KindSource, connspec.KindSink} {
		if s, ok := connspec.LookupKind(k, name); ok {
			specs = append(specs, s)
		}
	}
	if len(specs) == 0 {
		var names []string
		for _, s := range connspec.All() {
			names = append(names, s.Name)
		}
		return usagef("no connector %q (connectors: %s)", name, strings.Join(dedup(names), ", "))
	}
	if a.jsonOut() {
		if len(specs) == 1 {
			return a.printJSON(specs[0])
		}
		return a.printJSON(specs)
	}
	for i, s := range specs {
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		fmt.Fprintf(a.stdout, "%s (%s)\n\n%s\n\n", s.Name, s.Kind, s.Help)
		if len(s.Options) == 0 {
			fmt.Fprintln(a.stdout, "No options.")
			continue
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "OPTION\tTYPE\tDEFAULT\tHELP")
		for _, o := range s.Options {
			def := o.Default
			switch {
			case o.Required:
				def = "(required)"
			case def == "":
				def = `""`
			}
			help := o.Help
			if len(o.Enum) > 0 {
				help += " [" + strings.Join(o.Enum, "|") + "]"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Name, o.Type, def, help)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// firstSentence is the help text up to its first period that ends a
// sentence, on one line.
func firstSentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}

func dedup(sorted []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range sorted {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
