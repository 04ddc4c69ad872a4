package client_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/weirstream/weir/coordinator/dispatcher"
	"github.com/weirstream/weir/coordinator/dispatcher/dispatchertest"
	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/client"
	"github.com/weirstream/weir/internal/modinfo/modinfotest"
)

const spec = `name: wc
modules: {wc: wordcount@1.0}
sources:
  - {uid: gen, connector: datagen, options: {count: 10, keys: 3}}
operators:
  - {uid: split, module: wc, operator: split, input: gen}
sinks:
  - {uid: out, connector: stdout, input: split}
`

// TestSavepointRoundTrip drives the client against a real Dispatcher over
// the fake Jobs: submit from a savepoint, trigger, retry, wait, stop.
func TestSavepointRoundTrip(t *testing.T) {
	jobs := &dispatchertest.Jobs{SavepointDir: "/var/lib/weir/savepoints", SavepointAfter: 3}
	d, err := dispatcher.New(dispatcher.Config{Addr: "127.0.0.1:0", RegistryDir: t.TempDir(), Jobs: jobs, Workers: dispatchertest.NewWorkers()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(func() { srv.Close(); d.Close() })
	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	wasm := modinfotest.Module(t, modinfotest.Options{Operators: modinfotest.Ops("split:flat_map")})
	if _, _, err := c.Upload(ctx, "wordcount", "1.0", wasm); err != nil {
		t.Fatal(err)
	}
	job, err := c.Submit(ctx, api.SubmitRequest{Spec: spec, FromSavepoint: "/old/wc/chk-3", AllowNonRestoredState: true})
	if err != nil {
		t.Fatal(err)
	}
	if subs := jobs.Submissions(); subs[0].FromSavepoint != "/old/wc/chk-3" || !subs[0].AllowNonRestoredState {
		t.Errorf("submission %q %v", subs[0].FromSavepoint, subs[0].AllowNonRestoredState)
	}
	if job, err = c.Job(ctx, job.ID); err != nil || job.Checkpoints == nil || job.Checkpoints.Restored != "/old/wc/chk-3" {
		t.Fatalf("job %+v %v", job.Checkpoints, err)
	}

	rid := api.NewRequestID()
	st, err := c.Savepoint(ctx, job.ID, api.SavepointRequest{RequestID: rid})
	if err != nil || st.State != api.SavepointPending || st.RequestID != rid || st.Job != job.ID {
		t.Fatalf("trigger: %+v %v", st, err)
	}
	// A retry of the same request is the same savepoint.
	if again, err := c.Savepoint(ctx, job.ID, api.SavepointRequest{RequestID: rid}); err != nil || again != st || len(jobs.Savepoints()) != 1 {
		t.Errorf("retry: %+v %v, %d savepoints", again, err, len(jobs.Savepoints()))
	}
	var seen []string
	done, err := c.WaitSavepoint(ctx, st, time.Millisecond, func(s api.SavepointStatus) { seen = append(seen, s.State) })
	want := filepath.Join("/var/lib/weir/savepoints", job.ID, "chk-"+strconv.FormatUint(st.Checkpoint, 10))
	if err != nil || done.State != api.SavepointCompleted || done.Path != want {
		t.Fatalf("wait: %+v %v, want completed at %s", done, err, want)
	}
	if len(seen) != 3 || seen[0] != api.SavepointPending || seen[2] != api.SavepointCompleted {
		t.Errorf("progress saw %v, want 3 polls ending completed", seen)
	}
	if got, err := c.SavepointStatus(ctx, job.ID, rid); err != nil || got != done {
		t.Errorf("status: %+v %v", got, err)
	}

	// Stop with a savepoint: the job ends once it is complete.
	st, err = c.Savepoint(ctx, job.ID, api.SavepointRequest{RequestID: "final", Dir: "/mnt/sp", Stop: true, Drain: true})
	if err != nil {
		t.Fatal(err)
	}
	if done, err = c.WaitSavepoint(ctx, st, time.Millisecond, nil); err != nil || done.State != api.SavepointCompleted {
		t.Fatalf("stop with savepoint: %+v %v", done, err)
	}
	if job, _ = c.Job(ctx, job.ID); job.State != api.StateFinished {
		t.Errorf("job after stop with savepoint: %s", job.State)
	}

	// The coordinator's refusals are *client.Error with status and field.
	_, err = c.Savepoint(ctx, job.ID, api.SavepointRequest{Dir: "relative"})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 400 || ce.Field != "dir" {
		t.Errorf("relative dir: %v", err)
	}
	if _, err = c.SavepointStatus(ctx, job.ID, "unknown"); !errors.As(err, &ce) || ce.Status != 404 {
		t.Errorf("unknown request: %v", err)
	}
	// Waiting ends with its context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.WaitSavepoint(cctx, api.SavepointStatus{Job: job.ID, RequestID: "x", State: api.SavepointPending}, time.Hour, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled wait: %v", err)
	}
}
