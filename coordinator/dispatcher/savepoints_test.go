package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/coordinator/dispatcher"
	"github.com/weirstream/weir/coordinator/dispatcher/dispatchertest"
	"github.com/weirstream/weir/coordinator/registry"
	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/barrier"
)

// runningJob uploads the module, submits the spec and polls the job once,
// so it runs.
func (e *env) runningJob(t *testing.T) api.JobStatus {
	t.Helper()
	e.upload(t, "wordcount", "1.0", wcModule(t, ""))
	var st api.JobStatus
	if code := e.do(t, "POST", "/v1/jobs", "application/json", submitBody(t, spec), &st); code != 201 {
		t.Fatalf("submit: %d", code)
	}
	e.do(t, "GET", "/v1/jobs/"+st.ID, "", nil, &st)
	if st.State != api.StateRunning {
		t.Fatalf("job %s is %s, want running", st.ID, st.State)
	}
	return st
}

func TestSavepoints(t *testing.T) {
	e := newEnv(t, nil)
	e.jobs.SetSavepoints("/var/lib/weir/savepoints", 2, "")
	job := e.runningJob(t)
	base := "/v1/jobs/" + job.ID + "/savepoints"

	// A request with an id of its own: 202 and pending at once.
	var sp api.SavepointStatus
	body := `{"request_id": "nightly-1", "dir": "/mnt/sp/../savepoints/"}`
	if code := e.do(t, "POST", base, "application/json", []byte(body), &sp); code != 202 || sp.State != api.SavepointPending ||
		sp.RequestID != "nightly-1" || sp.Job != job.ID || sp.Path != "" {
		t.Fatalf("trigger: %d %+v", code, sp)
	}
	// The folder reaches Jobs cleaned.
	if got := e.jobs.Savepoints(); len(got) != 1 || got[0].Dir != "/mnt/savepoints" || got[0].Stop {
		t.Fatalf("Jobs got %+v", got)
	}
	// The same id again is the same savepoint, not a second one.
	var again api.SavepointStatus
	if code := e.do(t, "POST", base, "application/json", []byte(body), &again); code != 202 || again != sp {
		t.Errorf("retry: %d %+v, want %+v", code, again, sp)
	}
	if n := len(e.jobs.Savepoints()); n != 1 {
		t.Errorf("%d savepoints started by one request id sent twice", n)
	}
	// The same id with other parameters is a conflict.
	var ae api.Error
	if code := e.do(t, "POST", base, "application/json", []byte(`{"request_id": "nightly-1", "dir": "/elsewhere"}`), &ae); code != 409 || !strings.Contains(ae.Message, "nightly-1") {
		t.Errorf("reused id: %d %+v", code, ae)
	}
	// Polling: pending, then completed with the folder under dir.
	if code := e.do(t, "GET", base+"/nightly-1", "", nil, &sp); code != 200 || sp.State != api.SavepointPending {
		t.Errorf("first poll: %d %+v", code, sp)
	}
	e.do(t, "GET", base+"/nightly-1", "", nil, &sp)
	want := filepath.Join("/mnt/savepoints", job.ID, fmt.Sprintf("chk-%d", sp.Checkpoint))
	if sp.State != api.SavepointCompleted || sp.Path != want || sp.Checkpoint == 0 {
		t.Errorf("second poll: %+v, want completed at %s", sp, want)
	}
	// Retrying the trigger after it completed still answers that one.
	e.do(t, "POST", base, "application/json", []byte(body), &again)
	if again != sp || len(e.jobs.Savepoints()) != 1 {
		t.Errorf("retry after completion: %+v, %d savepoints", again, len(e.jobs.Savepoints()))
	}
	// The job's checkpoint stats show it.
	var st api.JobStatus
	e.do(t, "GET", "/v1/jobs/"+job.ID, "", nil, &st)
	if c := st.Checkpoints; c == nil || c.Latest == nil || c.Latest.ID < sp.Checkpoint || c.InProgress != 0 {
		t.Errorf("checkpoints after the savepoint: %+v", c)
	}

	// No body at all: a made-up id and the default folder.
	if code := e.do(t, "POST", base, "", nil, &sp); code != 202 || !regexp.MustCompile(`^sp-[0-9a-f]{16}$`).MatchString(sp.RequestID) {
		t.Errorf("empty body: %d %+v", code, sp)
	}
	var other api.SavepointStatus
	e.do(t, "POST", base, "", nil, &other)
	if other.RequestID == sp.RequestID {
		t.Errorf("two requests without ids got the same made-up id %s", sp.RequestID)
	}
	// Unknown request ids and jobs are 404s.
	if code := e.do(t, "GET", base+"/nope", "", nil, &ae); code != 404 || !strings.Contains(ae.Message, "nope") {
		t.Errorf("unknown request id: %d %+v", code, ae)
	}
	if code := e.do(t, "POST", "/v1/jobs/job-9999/savepoints", "", nil, &ae); code != 404 {
		t.Errorf("unknown job: %d %+v", code, ae)
	}
	if code := e.do(t, "GET", "/v1/jobs/job-9999/savepoints/x", "", nil, &ae); code != 404 {
		t.Errorf("status of an unknown job: %d %+v", code, ae)
	}
}

// TestSavepointStop checks that a savepoint with stop ends the job once
// it completes, and a failing one reports why.
func TestSavepointStop(t *testing.T) {
	e := newEnv(t, nil)
	job := e.runningJob(t)
	base := "/v1/jobs/" + job.ID + "/savepoints"
	var ae api.Error
	// The fake's cluster has no default folder: the Jobs' ErrInvalid is a 400.
	if code := e.do(t, "POST", base, "application/json", []byte(`{"stop": true}`), &ae); code != 400 || !strings.Contains(ae.Message, "no default savepoint folder") {
		t.Errorf("no folder: %d %+v", code, ae)
	}
	var sp api.SavepointStatus
	e.do(t, "POST", base, "application/json", []byte(`{"request_id": "s", "dir": "/sp", "stop": true, "drain": true}`), &sp)
	if got := e.jobs.Savepoints(); len(got) != 1 || !got[0].Stop || !got[0].Drain {
		t.Fatalf("Jobs got %+v", got)
	}
	for sp.State == api.SavepointPending {
		e.do(t, "GET", base+"/s", "", nil, &sp)
	}
	var st api.JobStatus
	e.do(t, "GET", "/v1/jobs/"+job.ID, "", nil, &st)
	if sp.State != api.SavepointCompleted || st.State != api.StateFinished || !strings.Contains(st.Message, sp.Path) {
		t.Errorf("stop with savepoint: %+v; job %s %q", sp, st.State, st.Message)
	}
	if code := e.do(t, "POST", base, "application/json", []byte(`{"dir": "/sp"}`), &ae); code != 409 || !strings.Contains(ae.Message, "already ended") {
		t.Errorf("savepoint of an ended job: %d %+v", code, ae)
	}

	e.jobs.SetSavepoints("/sp", 1, "the folder /sp is not writable")
	job = e.runningJob(t)
	sp = api.SavepointStatus{}
	e.do(t, "POST", "/v1/jobs/"+job.ID+"/savepoints", "application/json", []byte(`{"request_id": "f"}`), &sp)
	e.do(t, "GET", "/v1/jobs/"+job.ID+"/savepoints/f", "", nil, &sp)
	e.do(t, "GET", "/v1/jobs/"+job.ID, "", nil, &st)
	if sp.State != api.SavepointFailed || sp.Error != "the folder /sp is not writable" || sp.Path != "" ||
		st.State != api.StateRunning || st.Checkpoints.Failed != 1 || !strings.Contains(st.Checkpoints.LastFailure, "not writable") {
		t.Errorf("failed savepoint: %+v; job %s %+v", sp, st.State, st.Checkpoints)
	}
}

// TestSavepointBadBodies: every malformed trigger is a 4xx naming the
// field, and none reaches Jobs.
func TestSavepointBadBodies(t *testing.T) {
	e := newEnv(t, nil)
	job := e.runningJob(t)
	cases := []struct {
		ctype, body string
		status      int
		field, msg  string
	}{
		{"application/json", `{"dir": "relative/sp"}`, 400, "dir", "not an absolute path"},
		{"application/json", `{"dir": "/sp\u0000x"}`, 400, "dir", "NUL"},
		{"application/json", `{"dir": "/` + strings.Repeat("a", 4100) + `"}`, 400, "dir", "more than 4096"},
		{"application/json", `{"request_id": "a/b"}`, 400, "request_id", "only letters"},
		{"application/json", `{"request_id": "../x"}`, 400, "request_id", `".."`},
		{"application/json", `{"request_id": "` + strings.Repeat("r", 129) + `"}`, 400, "request_id", "more than 128"},
		{"application/json", `{"drain": true}`, 400, "drain", "send stop too"},
		{"application/json", `{"dir": "/sp", "colour": "blue"}`, 400, "colour", `unknown field "colour"`},
		{"application/json", `{"stop": "yes"}`, 400, "stop", "want a bool"},
		{"application/json", `[]`, 400, "", "want a object"},
		{"application/json", `{"dir": "/a"} {}`, 400, "", "more than one JSON value"},
		{"application/json", `{"dir": "/` + strings.Repeat("a", 9<<10) + `"}`, 413, "", "larger than 8192"},
		{"text/plain", `{}`, 415, "", "application/json"},
	}
	for _, c := range cases {
		var ae api.Error
		code := e.do(t, "POST", "/v1/jobs/"+job.ID+"/savepoints", c.ctype, []byte(c.body), &ae)
		if code != c.status || ae.Field != c.field || !strings.Contains(ae.Message, c.msg) {
			t.Errorf("body %.50q: %d %+v; want %d, field %q, message with %q", c.body, code, ae, c.status, c.field, c.msg)
		}
	}
	var ae api.Error
	if code := e.do(t, "GET", "/v1/jobs/"+job.ID+"/savepoints/a%20b", "", nil, &ae); code != 400 || ae.Field != "request_id" {
		t.Errorf("malformed request id in the path: %d %+v", code, ae)
	}
	if code := e.do(t, "POST", "/v1/jobs/a%20b/savepoints", "", nil, &ae); code != 400 || ae.Field != "id" {
		t.Errorf("malformed job id: %d %+v", code, ae)
	}
	if n := len(e.jobs.Savepoints()); n != 0 {
		t.Errorf("%d malformed requests reached Jobs.Savepoint", n)
	}
}

// TestSubmitFromSavepoint: the restore fields reach Jobs.Submit, checked.
func TestSubmitFromSavepoint(t *testing.T) {
	e := newEnv(t, nil)
	e.upload(t, "wordcount", "1.0", wcModule(t, ""))
	body := func(from string, allow bool) []byte {
		b, _ := json.Marshal(api.SubmitRequest{Spec: spec, FromSavepoint: from, AllowNonRestoredState: allow})
		return b
	}
	var st api.JobStatus
	if code := e.do(t, "POST", "/v1/jobs", "application/json", body("/sp/wc/./chk-7/", true), &st); code != 201 || st.Checkpoints == nil || st.Checkpoints.Restored != "/sp/wc/chk-7" {
		t.Fatalf("submit from a savepoint: %d %+v", code, st.Checkpoints)
	}
	subs := e.jobs.Submissions()
	if len(subs) != 1 || subs[0].FromSavepoint != "/sp/wc/chk-7" || !subs[0].AllowNonRestoredState {
		t.Errorf("Jobs got %q %v", subs[0].FromSavepoint, subs[0].AllowNonRestoredState)
	}
	for _, c := range []struct {
		from  string
		allow bool
		field string
		msg   string
	}{
		{"sp/wc/chk-7", false, "from_savepoint", "not an absolute path"},
		{"/sp\x00", false, "from_savepoint", "NUL"},
		{"", true, "allow_non_restored_state", "give from_savepoint too"},
	} {
		var ae api.Error
		if code := e.do(t, "POST", "/v1/jobs", "application/json", body(c.from, c.allow), &ae); code != 400 || ae.Field != c.field || !strings.Contains(ae.Message, c.msg) {
			t.Errorf("from %q allow %v: %d %+v; want field %s with %q", c.from, c.allow, code, ae, c.field, c.msg)
		}
	}
	if n := len(e.jobs.Submissions()); n != 1 {
		t.Errorf("%d refused submissions reached Jobs.Submit", n-1)
	}
}

// unsupported is a Jobs that cannot take savepoints, as the cluster's
// placeholder answers until they are wired.
type unsupported struct{ dispatchertest.Jobs }

func (*unsupported) Savepoint(context.Context, string, string, api.SavepointRequest) (api.SavepointStatus, error) {
	return api.SavepointStatus{}, fmt.Errorf("savepoints: not wired yet (%w)", errors.ErrUnsupported)
}

// TestSavepointsUnsupported: errors.ErrUnsupported is a 501 with the
// message, not a 500.
func TestSavepointsUnsupported(t *testing.T) {
	e := newEnv(t, func(c *dispatcher.Config) { c.Jobs = &unsupported{} })
	var ae api.Error
	if code := e.do(t, "POST", "/v1/jobs/j1/savepoints", "", nil, &ae); code != 501 || !strings.Contains(ae.Message, "not wired yet") {
		t.Errorf("%d %+v", code, ae)
	}
}

func FuzzSavepointBody(f *testing.F) {
	f.Add([]byte(`{"request_id": "a", "dir": "/sp", "stop": true, "drain": true}`))
	f.Add([]byte(`{"dir": "rel"}`))
	f.Add([]byte(``))
	reg, err := registry.Open(registry.Config{Dir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	h, err := dispatcher.NewHandler(dispatcher.Config{Jobs: &dispatchertest.Jobs{SavepointDir: "/sp"}, Workers: dispatchertest.NewWorkers()}, reg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/jobs/job-0001/savepoints", bytes.NewReader(body)))
		// No job exists: a valid body is a 404, an invalid one a 4xx.
		if rec.Code >= 500 || rec.Code < 400 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		var ae api.Error
		if err := json.Unmarshal(rec.Body.Bytes(), &ae); err != nil || ae.Message == "" {
			t.Fatalf("not an api.Error: %s", rec.Body)
		}
	})
}

// checkpoint_interval and checkpoint_mode override the spec's checkpoints
// block before the plan is built; bad values are refused by field.
func TestSubmitCheckpointOverrides(t *testing.T) {
	e := newEnv(t, nil)
	e.upload(t, "wordcount", "1.0", wcModule(t, ""))
	body := func(interval, mode string) []byte {
		b, _ := json.Marshal(api.SubmitRequest{Spec: spec, CheckpointInterval: interval, CheckpointMode: mode})
		return b
	}
	var st api.JobStatus
	if code := e.do(t, "POST", "/v1/jobs", "application/json", body("1500ms", "unaligned"), &st); code != 201 {
		t.Fatalf("submit with overrides: %d", code)
	}
	subs := e.jobs.Submissions()
	if len(subs) != 1 || subs[0].Job.Checkpoints.Interval != 1500*time.Millisecond || subs[0].Job.Checkpoints.Mode != barrier.Unaligned {
		t.Fatalf("Jobs got checkpoints %+v", subs[0].Job.Checkpoints)
	}
	for _, c := range []struct{ interval, mode, field, msg string }{
		{"soon", "", "checkpoint_interval", "positive duration"},
		{"-1s", "", "checkpoint_interval", "positive duration"},
		{"1ms", "", "checkpoint_interval", "at least 10ms"},
		{"", "exactly", "checkpoint_mode", "want aligned, unaligned or at-least-once"},
	} {
		var ae api.Error
		if code := e.do(t, "POST", "/v1/jobs", "application/json", body(c.interval, c.mode), &ae); code != 400 || ae.Field != c.field || !strings.Contains(ae.Message, c.msg) {
			t.Errorf("interval %q mode %q: %d %+v; want field %s with %q", c.interval, c.mode, code, ae, c.field, c.msg)
		}
	}
	if n := len(e.jobs.Submissions()); n != 1 {
		t.Errorf("%d refused submissions reached Jobs.Submit", n-1)
	}
}
