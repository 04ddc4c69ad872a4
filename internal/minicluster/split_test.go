package minicluster

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/coordinator/plan"
	"github.com/weirstream/weir/internal/deploy"
	"github.com/weirstream/weir/netstack"
	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/worker/state"
	"github.com/weirstream/weir/worker/task"
)

func init() {
	// Stateless, so the two runs of the test, which open their instances
	// at once, share nothing (a native operator's value is shared).
	weir.Map("mc_tag", func(r weir.Record) (weir.Record, error) {
		r.Value = append([]byte("seen:"), r.Value...)
		return r, nil
	})
}

const splitSpec = `
name: split
parallelism: 3
modules: {m: .}
sources:
  - uid: gen
    connector: datagen
    options: {count: 20000, keys: 37, seed: 5}
    parallelism: 2
operators:
  - uid: count
    module: m
    operator: mc_tag
    inputs: [{from: gen, partition: key_by}]
sinks:
  - uid: out
    connector: file
    options: {path: OUT, format: jsonl}
    parallelism: 1
    input: count
`

// A job split over two runs, each given the descriptor of its own
// subtasks and joined by a network, ends with the output of the same job
// run whole.
func TestDescriptorSplitAcrossRuns(t *testing.T) {
	dir := t.TempDir()
	whole := runSplit(t, filepath.Join(dir, "whole.jsonl"), 1)
	split := runSplit(t, filepath.Join(dir, "split.jsonl"), 2)
	if len(whole) != 20000 {
		t.Fatalf("whole run wrote %d records, want 20000", len(whole))
	}
	if !slices.Equal(whole, split) {
		t.Fatalf("split run differs from the whole run: %d vs %d records", len(split), len(whole))
	}
	// Independently: every record went through the operator once, and
	// the keys are datagen's.
	keys := map[string]bool{}
	for _, line := range whole {
		if !strings.Contains(line, `"value":"seen:`) {
			t.Fatalf("a record skipped the operator: %s", line)
		}
		keys[line[:strings.Index(line, `,"value"`)]] = true
	}
	if len(keys) != 37 {
		t.Fatalf("%d keys, want 37", len(keys))
	}
}

// runSplit runs the job as `workers` runs and returns the sorted output
// lines, timestamps removed.
func runSplit(t *testing.T, out string, workers int) []string {
	t.Helper()
	spec, err := jobspec.Parse([]byte(strings.Replace(splitSpec, "OUT", out, 1)), "split.yaml")
	if err != nil {
		t.Fatal(err)
	}
	j, err := Prepare(context.Background(), spec, Options{Native: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	mods := NewModules(spec, nil, true, "", nil)
	d, err := j.Plan.Descriptor(plan.DescriptorOptions{Job: "split", Module: mods.Digest})
	if err != nil {
		t.Fatal(err)
	}
	// Subtask i of every vertex goes to worker i % workers.
	parts := d.Place(func(v, i int) string { return "w" + strconv.Itoa(i%workers) })
	if len(parts) != workers {
		t.Fatalf("placed on %d workers, want %d", len(parts), workers)
	}
	net := &pipeNetwork{inputs: map[task.Channel]pipeEnd{}, cond: sync.NewCond(new(sync.Mutex))}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for _, part := range parts {
		b, err := part.Encode()
		if err != nil {
			t.Fatal(err)
		}
		pd, err := deploy.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		tj, err := task.FromDescriptor(pd, mods)
		if err != nil {
			t.Fatal(err)
		}
		tj.State = state.NewHeap(nil)
		tj.Network = net
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := task.Start(context.Background(), tj, task.Options{})
			if err == nil {
				err = r.Wait()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if i := strings.Index(l, `,"timestamp"`); i >= 0 {
			l = l[:i]
		}
		lines = append(lines, l)
	}
	slices.Sort(lines)
	return lines
}

// pipeNetwork joins runs in one process: an output waits until the run
// consuming the channel has connected its input, then joins it with an
// in-process channel.
type pipeNetwork struct {
	cond   *sync.Cond
	inputs map[task.Channel]pipeEnd
}

type pipeEnd struct {
	gate *netstack.InputGate
	ch   int
}

func (n *pipeNetwork) Inputs(gate *netstack.InputGate, chans []task.RemoteInput) (io.Closer, error) {
	n.cond.L.Lock()
	for _, c := range chans {
		n.inputs[c.Channel] = pipeEnd{gate, c.Index}
	}
	n.cond.L.Unlock()
	n.cond.Broadcast()
	return io.NopCloser(nil), nil
}

func (n *pipeNetwork) Output(ctx context.Context, c task.Channel) (netstack.Subpartition, error) {
	n.cond.L.Lock()
	defer n.cond.L.Unlock()
	for {
		if e, ok := n.inputs[c]; ok {
			return netstack.NewLocal(e.gate, e.ch, task.DefaultCredits, task.DefaultBufferSize), nil
		}
		n.cond.Wait()
	}
}
