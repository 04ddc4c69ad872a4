package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/viper"

	"github.com/weirstream/weir/internal/connspec"
)

// runConnectors runs `weir connectors ARGS` in-process.
func runConnectors(t *testing.T, output string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	a := &app{stdout: &out, stderr: &out, cfg: viper.New()}
	a.cfg.Set("output", output)
	cmd := newConnectorsCmd(a)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

func TestConnectorsList(t *testing.T) {
	out, err := runConnectors(t, "text")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range connspec.All() {
		found := false
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == s.Name && f[1] == string(s.Kind) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s %s missing from:\n%s", s.Kind, s.Name, out)
		}
	}
	out, err = runConnectors(t, "json")
	if err != nil {
		t.Fatal(err)
	}
	var specs []connspec.Spec
	if err := json.Unmarshal([]byte(out), &specs); err != nil {
		t.Fatal(err)
	}
	if len(specs) != len(connspec.All()) {
		t.Fatalf("%d connectors in JSON, want %d", len(specs), len(connspec.All()))
	}
}

func TestConnectorsShow(t *testing.T) {
	out, err := runConnectors(t, "text", "file")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []connspec.Kind{connspec.KindSource, connspec.KindSink} {
		s, _ := connspec.LookupKind(k, "file")
		if !strings.Contains(out, "file ("+string(k)+")") {
			t.Errorf("no %s section", k)
		}
		for _, o := range s.Options {
			if !strings.Contains(out, o.Name) || !strings.Contains(out, o.Help) {
				t.Errorf("option %s of the %s missing", o.Name, k)
			}
		}
	}
	out, err = runConnectors(t, "json", "datagen")
	if err != nil {
		t.Fatal(err)
	}
	var spec connspec.Spec
	if err := json.Unmarshal([]byte(out), &spec); err != nil {
		t.Fatal(err)
	}
	want, _ := connspec.LookupKind(connspec.KindSource, "datagen")
	if spec.Name != "datagen" || len(spec.Options) != len(want.Options) || spec.Options[0].Default != want.Options[0].Default {
		t.Fatalf("JSON spec %+v", spec)
	}
	_, err = runConnectors(t, "text", "nope")
	if _, ok := err.(*usageError); !ok || !strings.Contains(err.Error(), "datagen") {
		t.Fatalf("unknown connector: %v", err)
	}
}
