//go:build !wasip1

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/examples/nexmark/reference"
	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/clustertest"
)

// The queries on a cluster: a coordinator and two worker processes, each
// query's operators at parallelism 2 spread over both, output compared
// with package reference as in TestQueries.
func TestQueriesCluster(t *testing.T) {
	n := int64(12000)
	if testing.Short() {
		n = 4000
	}
	evs := events(t, n)
	c := clustertest.Start(t, weir(t), clustertest.Options{Workers: 2, Slots: 2})
	for _, q := range []string{"q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8"} {
		t.Run(q, func(t *testing.T) {
			want := reference.Queries[q](evs)
			text, err := os.ReadFile(q + ".yaml")
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			s := string(text)
			s = replaceOnce(t, s, `count: 200000\b`, fmt.Sprintf("count: %d", n))
			s = replaceOnce(t, s, `(?m)^  nexmark: \.`, "  nexmark: "+mustAbs(t, "."))
			s = replaceOnce(t, s, `path: out/`+q+`\.jsonl`, "path: "+filepath.Join(dir, "out.jsonl"))
			s = strings.Replace(s, "parallelism: 1\n", "parallelism: 2\n", 1)
			spec := filepath.Join(dir, q+".yaml")
			if err := os.WriteFile(spec, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
			id := c.Submit(spec)
			st := c.Wait(id, 4*time.Minute)
			if st.State != api.StateFinished {
				t.Fatalf("%s: job %s %s (%s)", q, id, st.State, st.Message)
			}
			if d := reference.Diff(want, readOutput(t, dir), 8); d != "" {
				t.Errorf("%s on two workers, %d events:\n%s", q, n, d)
			}
		})
	}
}
