package weir_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyStandardLibrary: operator authors import this SDK into modules
// that must stay small and must not drag the host's dependencies (wazero,
// pebble, quic-go) into their builds. Only the standard library and the ABI
// package may be imported.
func TestOnlyStandardLibrary(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/weirstream/weir/sdk/go":  true,
		"github.com/weirstream/weir/wasmabi": true,
	}
	for _, pkg := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(pkg, "/")
		if strings.Contains(first, ".") && !allowed[pkg] {
			t.Errorf("the SDK depends on %s", pkg)
		}
	}
}
