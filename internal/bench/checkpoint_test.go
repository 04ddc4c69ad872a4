package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A tiny checkpoint bench, native operators, checkpoints every 20 ms: the
// report has a round per query and round, a summary per query that is the
// min/median/max of its rounds, a full and a not-implemented incremental
// row per query whose count is the runs' completed checkpoints, and both
// backpressure modes, every figure positive and every ratio in (0, 10).
// No figure is compared with a speed.
func TestCheckpointSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the engine for several seconds")
	}
	const rounds = 2
	// Sized so that even a fast native run lasts several intervals.
	events := map[string]int64{"q5": 40_000, "q8": 400_000}
	defer func(d map[string]int64) { DefaultCheckpointEvents = d }(DefaultCheckpointEvents)
	DefaultCheckpointEvents = events
	rep, err := Checkpoint(context.Background(), CheckpointOptions{
		SpecDir: "../../examples/nexmark", Queries: []string{"q5", "q8"}, Rounds: rounds,
		Interval: 20 * time.Millisecond, Native: true, SinkRate: 5000, BackpressureFor: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rounds) != 2*rounds || len(rep.Overhead) != 2 || len(rep.Durations) != 4 || len(rep.Backpressure) != 2 {
		t.Fatalf("report shape: %d rounds, %d overheads, %d duration rows, %d backpressure rows", len(rep.Rounds), len(rep.Overhead), len(rep.Durations), len(rep.Backpressure))
	}
	inRange := func(what string, x float64) {
		t.Helper()
		if !(x > 0 && x < 10) {
			t.Errorf("%s = %v, want in (0, 10)", what, x)
		}
	}
	for i, q := range []string{"q5", "q8"} {
		var ratios []float64
		completed := 0
		for r, x := range rep.Rounds[i*rounds : (i+1)*rounds] {
			if x.Query != q || x.Round != r+1 || x.Events != events[q] {
				t.Fatalf("round %d of %s: %+v", r+1, q, x)
			}
			if want := []string{"off", "on"}[r%2]; x.First != want {
				t.Errorf("%s round %d went first with checkpoints %s, want %s (alternating)", q, r+1, x.First, want)
			}
			for _, f := range []float64{x.OffPerSec, x.OnPerSec, x.OffPerCoreSec, x.OnPerCoreSec} {
				if f <= 0 {
					t.Errorf("%s round %d: a rate is not positive: %+v", q, r+1, x)
				}
			}
			inRange(q+" ratio", x.Ratio)
			inRange(q+" cpu ratio", x.CPURatio)
			if x.Checkpoints < 1 || x.Failed != 0 {
				t.Errorf("%s round %d: %d checkpoints completed, %d failed; want at least one and none", q, r+1, x.Checkpoints, x.Failed)
			}
			ratios = append(ratios, x.Ratio)
			completed += x.Checkpoints
		}
		o := rep.Overhead[i]
		slices.Sort(ratios)
		if o.Query != q || o.Rounds != rounds || o.MinRatio != ratios[0] || o.MaxRatio != ratios[rounds-1] || o.MedianRatio != (ratios[0]+ratios[1])/2 {
			t.Errorf("%s summary %+v, want min/median/max of %v", q, o, ratios)
		}
		inRange(q+" median cpu ratio", o.MedianCPURatio)
		full, inc := rep.Durations[2*i], rep.Durations[2*i+1]
		if full.Query != q || full.Kind != "full" || !full.Implemented || inc.Query != q || inc.Kind != "incremental" || !inc.Implemented || full.Count == 0 {
			t.Fatalf("%s duration rows: %+v, %+v", q, full, inc)
		}
		// The durations come from the runner's history, the count of the
		// rounds from its Completed counter.
		// The throughput rounds take full checkpoints (the default); one
		// more run per round takes incremental ones.
		if full.Count != completed || inc.Count == 0 {
			t.Errorf("%s: %d full checkpoint durations, but the runs completed %d (and %d incremental)", q, full.Count, completed, inc.Count)
		}
		// The last acknowledgement comes before the metadata is written.
		if !(full.AckP50Ms > 0 && full.AckP50Ms <= full.P50Ms && full.AckP99Ms <= full.P99Ms) {
			t.Errorf("%s: to the last acknowledgement p50 %.1f ms, p99 %.1f ms; checkpoints p50 %.1f ms, p99 %.1f ms", q, full.AckP50Ms, full.AckP99Ms, full.P50Ms, full.P99Ms)
		}
		for _, d := range []CheckpointDurations{full, inc} {
			if !(d.P50Ms > 0 && d.P50Ms <= d.P99Ms && d.P99Ms <= d.MaxMs) || !(d.P50Bytes > 0 && d.P50Bytes <= d.MaxBytes) {
				t.Errorf("%s %s checkpoints: %+v", q, d.Kind, d)
			}
		}
	}
	for i, mode := range []string{"aligned", "unaligned"} {
		b := rep.Backpressure[i]
		if b.Mode != mode || b.Count < 1 || b.SinkRate != 5000 || b.SinkRecords <= 0 || b.Seconds < 2 {
			t.Errorf("backpressure %s: %+v", mode, b)
		}
		if !(b.P50Ms > 0 && b.P50Ms <= b.P99Ms && b.P99Ms <= b.MaxMs) || b.P50Bytes <= 0 || !(b.AckP50Ms > 0 && b.AckP50Ms <= b.P50Ms) {
			t.Errorf("backpressure %s: %+v", mode, b)
		}
		if !(b.SourceBackpressured > 0 && b.SourceBackpressured <= 1) {
			t.Errorf("backpressure %s: source backpressured %v of the time, want in (0, 1]", mode, b.SourceBackpressured)
		}
		// At most rate records per second per subtask (2 of them), plus
		// the first batch each paces after.
		if limit := int64(b.Seconds*2*5000) + 2*4096; b.SinkRecords > limit {
			t.Errorf("backpressure %s: the sinks wrote %d records in %.1fs, more than their rate allows (%d)", mode, b.SinkRecords, b.Seconds, limit)
		}
	}
	var out bytes.Buffer
	rep.WriteTable(&out)
	for _, want := range []string{"ratio min", "p99 ms", "incremental", "aligned", "unaligned"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	t.Log("\n" + out.String())
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
}

// Options out of range are refused before anything runs.
func TestCheckpointOptionsRefused(t *testing.T) {
	for _, o := range []CheckpointOptions{
		{Events: -1}, {Rounds: -1}, {Rounds: 101}, {Interval: time.Millisecond}, {SinkRate: -5},
		{BackpressureFor: -time.Second}, {Mode: "sideways"}, {Workers: 1}, {Workers: -1}, {Queries: []string{"q99"}},
	} {
		if _, err := Checkpoint(context.Background(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestRank(t *testing.T) {
	for _, c := range []struct{ n, p, want int }{{1, 50, 0}, {1, 99, 0}, {2, 50, 0}, {2, 99, 1}, {10, 50, 4}, {10, 99, 9}, {100, 99, 98}, {200, 99, 197}} {
		if got := rank(c.n, c.p); got != c.want {
			t.Errorf("rank(%d, %d) = %d, want %d", c.n, c.p, got, c.want)
		}
	}
}

// The recovery run on real processes: a coordinator and three workers of
// a freshly built weir, one SIGKILLed. The phases follow each other, the
// timeline starts with the job running its first attempt and ends with
// the second one running, and the timeouts shown are the ones asked for.
func TestCheckpointRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds weir and runs a cluster of processes")
	}
	bin := filepath.Join(t.TempDir(), "weir")
	build := exec.Command("go", "build", "-o", bin, "./cmd/weir")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building weir: %v\n%s", err, out)
	}
	o := CheckpointOptions{SpecDir: "../../examples/nexmark", Workers: 3, Binary: bin, HeartbeatTimeout: 1500 * time.Millisecond, RestartDelay: 100 * time.Millisecond}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	r, err := recoveryRun(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !(r.Detected > 0 && r.Detected <= r.Canceled && r.Canceled <= r.Restarted && r.Restarted <= r.Seconds) {
		t.Errorf("phases out of order: %+v", r)
	}
	if len(r.Timeline) < 2 || !strings.Contains(r.Timeline[0], "attempt 1") || !strings.Contains(r.Timeline[len(r.Timeline)-1], "attempt 2 running") {
		t.Errorf("timeline:\n%s", strings.Join(r.Timeline, "\n"))
	}
	var hb, delay bool
	for k, v := range r.Timeouts {
		hb = hb || strings.HasPrefix(k, "heartbeat timeout") && v == "1.5s"
		delay = delay || strings.HasPrefix(k, "restart delay") && v == "100ms"
	}
	if !hb || !delay || r.Dominant == "" || r.Workers != 3 {
		t.Errorf("timeouts %v, dominant %q, workers %d", r.Timeouts, r.Dominant, r.Workers)
	}
	rep := &CheckpointReport{Recovery: r}
	var out bytes.Buffer
	rep.WriteTable(&out)
	for _, want := range []string{"kill to first record", "dominated by", "after the kill:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	t.Log("\n" + out.String())
}
