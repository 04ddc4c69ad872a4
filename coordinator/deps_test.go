package coordinator

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyRules keeps the dependency rules of DESIGN (see also
// docs/connectors.md): nothing under coordinator/ may depend, even
// indirectly or in its tests, on worker/, nor worker/ on coordinator/, and
// the leaves both sides share depend on neither.
func TestDependencyRules(t *testing.T) {
	const module = "github.com/weirstream/weir/"
	for _, rule := range []struct{ pattern, forbidden string }{
		{module + "coordinator/...", module + "worker"},
		{module + "worker/...", module + "coordinator"},
	} {
		for _, bad := range forbiddenDeps(t, rule.pattern, rule.forbidden) {
			t.Errorf("%s depends on %s; move what it needs into a leaf under internal/", rule.pattern, bad)
		}
	}
	for _, leaf := range []string{"connspec", "deploy", "control", "api", "barrier", "snapshot", "splits", "keygroup", "ckptstore"} {
		for _, side := range []string{"worker", "coordinator"} {
			for _, bad := range forbiddenDeps(t, module+"internal/"+leaf, module+side) {
				t.Errorf("the shared leaf internal/%s depends on %s", leaf, bad)
			}
		}
	}
	// The check itself sees a dependency that exists: the mini-cluster
	// joins both sides.
	if len(forbiddenDeps(t, module+"internal/minicluster", module+"worker")) == 0 {
		t.Fatal("go list shows no worker/ package under internal/minicluster; the check is blind")
	}
}

// forbiddenDeps returns the dependencies of pattern (tests included) that
// are prefix or lie under it.
func forbiddenDeps(t *testing.T, pattern, prefix string) []string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("finding the go command to list dependencies: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-test", pattern).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps -test %s: %v\n%s", pattern, err, out)
	}
	lines := strings.Fields(string(out))
	if len(lines) == 0 {
		t.Fatalf("go list -deps %s listed nothing", pattern)
	}
	var bad []string
	for _, p := range lines {
		// Test variants print as "pkg [pkg.test]"; Fields splits them off.
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			bad = append(bad, p)
		}
	}
	return bad
}
