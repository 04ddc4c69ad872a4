package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/client"
)

// nexmarkCluster runs one query on a coordinator and o.Workers worker
// processes of this binary, one slot each, every operator at parallelism
// o.Workers: the same spec as the embedded run, with its sinks replaced by
// discard. Time and CPU count from the moment every subtask runs (module
// fetch and compilation left out) to the job's end; CPU is the workers'
// user+sys time.
func nexmarkCluster(ctx context.Context, path, q string, o NexmarkOptions) (*NexmarkRow, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "weir-bench-cluster-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	spec, err := clusterSpec(path, dir, o)
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	url := "http://" + addr
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			p.Wait()
		}
	}()
	start := func(args ...string) (*exec.Cmd, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "WEIR_CACHE_DIR="+o.CacheDir)
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		procs = append(procs, cmd)
		return cmd, nil
	}
	if _, err := start("coordinator", "--listen", addr, "--data-dir", dir); err != nil {
		return nil, err
	}
	var workers []int
	for i := range o.Workers {
		w, err := start("worker", "--coordinator", url, "--data-dir", dir, "--slots", "1", "--id", fmt.Sprintf("bench-%d", i))
		if err != nil {
			return nil, err
		}
		workers = append(workers, w.Process.Pid)
	}
	c, err := client.New(url, client.Options{})
	if err != nil {
		return nil, err
	}
	if err := waitWorkers(ctx, c, o.Workers); err != nil {
		return nil, err
	}
	id, err := submitDetached(ctx, bin, spec, url, append(os.Environ(), "WEIR_CACHE_DIR="+o.CacheDir))
	if err != nil {
		return nil, err
	}
	var st api.JobStatus
	var t0 time.Time
	var cpu0 time.Duration
	if err := poll(ctx, 10*time.Minute, func() (bool, error) {
		s, err := c.Job(ctx, id)
		if err != nil {
			return false, err
		}
		st = s
		if t0.IsZero() && (allRunning(s) || s.State.Terminal()) {
			t0, cpu0 = time.Now(), cpuOf(workers)
		}
		return s.State.Terminal(), nil
	}); err != nil {
		return nil, err
	}
	wall := time.Since(t0).Seconds()
	cpu := (cpuOf(workers) - cpu0).Seconds()
	if st.State != api.StateFinished {
		return nil, fmt.Errorf("job %s %s: %s", id, st.State, st.Message)
	}
	row := &NexmarkRow{Query: q, Mode: fmt.Sprintf("go, %d workers", o.Workers), Backend: o.Backend, Parallelism: o.Workers, Events: o.Events,
		Seconds: wall, CPUSeconds: cpu, EventsPerSec: float64(o.Events) / wall}
	if cpu > 0 {
		row.EventsPerCoreSec = float64(o.Events) / cpu
	}
	// Outputs stay 0: a sink chained after an operator has no count of
	// its own in the REST API; TestQueriesCluster checks the results.
	return row, nil
}

// clusterSpec writes the query's spec for the cluster: events, discard
// sinks, parallelism, backend, the module folder made absolute.
func clusterSpec(path, dir string, o NexmarkOptions) (string, error) {
	return rewriteSpec(path, filepath.Join(dir, filepath.Base(path)), "count: "+strconv.FormatInt(o.Events, 10), o.Workers, o.Backend, "")
}

// rewriteSpec writes a Nexmark query's spec at path to out for a run on
// a cluster: the source's count clause replaced by count, the module
// folder made absolute, file sinks replaced by discard, every parallelism
// set to parallelism, the backend set, and extra appended.
func rewriteSpec(path, out, count string, parallelism int, backend, extra string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return "", err
	}
	s := string(b)
	for _, e := range []struct{ re, with string }{
		{`count: \d+`, count},
		{`(?m)^  nexmark: \.`, "  nexmark: " + abs},
		{`connector: file\n(\s+)options: \{path: [^}]*\}`, "connector: discard\n${1}options: {}"},
		{`(?m)^(\s*)parallelism: \d+`, "${1}parallelism: " + strconv.Itoa(parallelism)},
		{`backend: \w+`, "backend: " + backend},
	} {
		s = regexp.MustCompile(e.re).ReplaceAllString(s, e.with)
	}
	return out, os.WriteFile(out, []byte(s+extra), 0o644)
}

// freeAddr returns a loopback address with a port free right now, for a
// coordinator process to listen on.
// waitWorkers waits until n workers have registered with the coordinator
// c talks to.
func waitWorkers(ctx context.Context, c *client.Client, n int) error {
	if err := poll(ctx, time.Minute, func() (bool, error) {
		ws, err := c.Workers(ctx)
		return err == nil && len(ws) == n, nil
	}); err != nil {
		return fmt.Errorf("waiting for %d workers: %w", n, err)
	}
	return nil
}

// submitDetached submits spec with `bin job submit --detached` to the
// coordinator at url and returns the job's id.
func submitDetached(ctx context.Context, bin, spec, url string, env []string) (string, error) {
	var out bytes.Buffer
	sub := exec.CommandContext(ctx, bin, "job", "submit", spec, "--detached", "--output", "json", "--coordinator", url)
	sub.Env = env
	sub.Stdout, sub.Stderr = &out, &out
	if err := sub.Run(); err != nil {
		return "", fmt.Errorf("weir job submit: %v: %s", err, out.String())
	}
	var st api.JobStatus
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.ID == "" {
		return "", fmt.Errorf("weir job submit printed %q", out.String())
	}
	return st.ID, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func allRunning(s api.JobStatus) bool {
	if len(s.Subtasks) == 0 {
		return false
	}
	for _, t := range s.Subtasks {
		if t.State != api.StateRunning && t.State != api.StateFinished {
			return false
		}
	}
	return true
}

// cpuOf sums the user and system CPU time of processes, from /proc.
func cpuOf(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces): state is
		// field 3, utime 14 and stime 15.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
