package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// watLoud is a map that logs a line with a binary byte in every process
// call, loops forever when the batch's first value is "loop", and else
// passes its input through.
const watLoud = `(module
  (import "weir" "output" (func $output (param i32 i32)))
  (import "weir" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "{\"operators\":[{\"name\":\"loud\",\"kind\":\"map\"}]}")
  (data (i32.const 100) "got a batch \01 here")
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_describe") (call $output (i32.const 0) (i32.const 44)))
  (func (export "weir_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param $op i32) (param $method i32) (param $len i32) (result i32)
    (if (i32.ne (local.get $method) (i32.const 1)) (then (return (i32.const 0))))
    (call $log (i32.const 1) (i32.const 100) (i32.const 19))
    ;; first entry at 1048: value "loop" (4 bytes) after a 0-byte key
    (if (i32.and (i32.eq (i32.load (i32.const 1064)) (i32.const 4)) (i32.eq (i32.load (i32.const 1072)) (i32.const 0x706f6f6c)))
      (then (loop $l (br $l))))
    (call $output (i32.const 1048) (i32.sub (local.get $len) (i32.const 24)))
    (i32.const 0)))`

func loudSpec(t *testing.T, values ...string) string {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	os.WriteFile(in, []byte(strings.Join(values, "\n")+"\n"), 0o644)
	return writeSpec(t, dir, fmt.Sprintf(`
name: loud
modules: {m: %s}
sources:
  - {uid: lines, connector: file, options: {path: %s, format: lines}, parallelism: 1}
operators:
  - {uid: shout, module: m, operator: loud, parallelism: 1, input: lines}
sinks:
  - {uid: out, connector: file, options: {path: out.jsonl}, parallelism: 1, input: shout}
`, wat(t, watLoud), in))
}

// TestLimitFlags: a zero limit is refused rather than silently the
// default; a negative call timeout is "no limit", explicitly.
func TestLimitFlags(t *testing.T) {
	m := wat(t, watLoud)
	for _, c := range []struct {
		flag, want string
	}{
		{"--call-timeout=0", "--call-timeout 0: give a time limit"},
		{"--memory-pages=0", "--memory-pages 0: give the memory limit"},
		{"--output-limit=0", "--output-limit 0"},
	} {
		r := weir(t, "module", "inspect", m, c.flag)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q", c.flag, r.code, r.stderr, c.want)
		}
	}
	cmd := exec.Command(weirBin, "module", "inspect", m)
	cmd.Env = append(os.Environ(), "WEIR_CALL_TIMEOUT=0")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--call-timeout 0") {
		t.Errorf("WEIR_CALL_TIMEOUT=0: %v, %s; want it refused", err, out)
	}
	if r := weir(t, "module", "inspect", m, "--call-timeout=-1s"); r.code != 0 {
		t.Errorf("--call-timeout=-1s (no limit): exit %d: %s", r.code, r.stderr)
	}
}

// TestModuleTestUsage: weir module test reports each instance's memory and
// CPU.
func TestModuleTestUsage(t *testing.T) {
	m := wat(t, watLoud)
	in := filepath.Join(t.TempDir(), "in.jsonl")
	os.WriteFile(in, []byte(`{"value":"a"}`+"\n"+`{"value":"b"}`+"\n"), 0o644)
	r := mustWeir(t, "module", "test", m, "--operator", "loud", "--input", in, "--memory-pages", "32")
	if !strings.Contains(r.stderr, "usage loud: memory 128 KiB (peak 128 KiB of the 2.0 MiB limit)") || !strings.Contains(r.stderr, "calls") {
		t.Errorf("stderr lacks the usage line:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, `got a batch \x01 here`) {
		t.Errorf("the log line is not there, escaped:\n%s", r.stderr)
	}
	j := mustWeir(t, "module", "test", m, "--operator", "loud", "--input", in, "--output", "json")
	var res struct {
		Usage []struct {
			Operator string `json:"operator"`
			Calls    int64  `json:"calls"`
			Fuel     int64  `json:"fuel"`
			Memory   int64  `json:"memory_bytes"`
			Worst    int64  `json:"worst_case_bytes"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(j.stdout), &res); err != nil {
		t.Fatal(err)
	}
	// Calls into the module: instantiation, weir_buffer once (the input
	// fits its first buffer), open, process (one batch), finish. Memory:
	// the module's 2 pages.
	if len(res.Usage) != 1 || res.Usage[0].Calls != 5 || res.Usage[0].Fuel <= 0 || res.Usage[0].Memory != 2*65536 || res.Usage[0].Worst < 64<<20 {
		t.Errorf("usage %+v", res.Usage)
	}
}

// TestRunShowsLogs: weir run prints a module's log lines on stderr,
// prefixed with operator and subtask, escaped, and the summary shows the
// operator's memory and CPU.
func TestRunShowsLogs(t *testing.T) {
	r := mustWeir(t, "run", loudSpec(t, "a", "b", "c"))
	if !strings.Contains(r.stderr, `[shout/0] info: got a batch \x01 here`) {
		t.Errorf("stderr lacks the module's log line:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "peak memory") || !strings.Contains(r.stderr, "128 KiB") {
		t.Errorf("summary lacks the memory column:\n%s", r.stderr)
	}
}

// TestRunInterrupt: SIGINT and SIGTERM stop a job whose module loops,
// within seconds although its call time limit is an hour.
func TestRunInterrupt(t *testing.T) {
	e2e(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(weirBin, "run", loudSpec(t, "loop"), "--call-timeout", "1h")
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			// The module logs before it loops: wait for the line.
			deadline := time.Now().Add(2 * time.Minute)
			poll := time.NewTicker(20 * time.Millisecond)
			for !strings.Contains(stderr.String(), "got a batch") {
				if time.Now().After(deadline) {
					t.Fatalf("the module never logged:\n%s", stderr.String())
				}
				<-poll.C
			}
			poll.Stop()
			sent := time.Now()
			cmd.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatalf("weir run still running a minute after %v:\n%s", sig, stderr.String())
			}
			t.Logf("exited %v after %v", sig, time.Since(sent))
			if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(stderr.String(), "stopped because its job is ending") || !strings.Contains(stderr.String(), "operator shout subtask 0") {
				t.Errorf("exit %d, stderr:\n%s", cmd.ProcessState.ExitCode(), stderr.String())
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func (b *syncBuffer) lock() {
	if b.mu == nil {
		b.mu = make(chan struct{}, 1)
	}
	b.mu <- struct{}{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.lock()
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.lock()
	defer func() { <-b.mu }()
	return b.buf.String()
}
