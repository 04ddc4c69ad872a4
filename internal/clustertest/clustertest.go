// Package clustertest starts a real cluster for tests: a `weir
// coordinator` process and `weir worker` processes on 127.0.0.1, each with
// its own folders, stopped (SIGTERM, then SIGKILL) when the test ends. It
// submits jobs with `weir job submit` and reads status over the REST API,
// so a test exercises what a user would.
package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/client"
)

// Cluster is a running coordinator and its workers.
type Cluster struct {
	t       *testing.T
	bin     string
	dir     string
	URL     string
	Client  *client.Client
	mu      sync.Mutex
	procs   []*Proc
	workers map[string]*Proc
}

// Proc is one process of the cluster.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

// Options shape a cluster.
type Options struct {
	// Workers and Slots: how many workers start, with how many slots each.
	Workers, Slots int
	// CoordinatorArgs are extra flags of `weir coordinator`.
	CoordinatorArgs []string
	// Env is added to every process's environment.
	Env []string
}

// Start starts a coordinator and opts.Workers workers with the weir
// binary bin, and waits until every worker has registered.
func Start(t *testing.T, bin string, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, bin: bin, dir: t.TempDir(), workers: map[string]*Proc{}}
	port := freePort(t)
	c.URL = "http://127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"coordinator", "--listen", "127.0.0.1:" + strconv.Itoa(port), "--data-dir", c.dir, "--heartbeat-timeout", "2s", "--heartbeat-interval", "250ms"}, opts.CoordinatorArgs...)
	c.start("coordinator", opts.Env, args...)
	t.Cleanup(c.stopAll)
	var err error
	if c.Client, err = client.New(c.URL, client.Options{}); err != nil {
		t.Fatal(err)
	}
	for i := range opts.Workers {
		c.AddWorker(fmt.Sprintf("w%d", i+1), opts.Slots, opts.Env...)
	}
	c.WaitFor("workers registered", 60*time.Second, func() bool {
		ws, err := c.Client.Workers(context.Background())
		return err == nil && len(ws) == opts.Workers
	})
	return c
}

// AddWorker starts a worker process.
func (c *Cluster) AddWorker(id string, slots int, env ...string) *Proc {
	p := c.start(id, env, "worker", "--coordinator", c.URL, "--data-dir", c.dir, "--work-dir", filepath.Join(c.dir, id), "--id", id, "--slots", strconv.Itoa(slots))
	c.mu.Lock()
	c.workers[id] = p
	c.mu.Unlock()
	return p
}

// Worker returns the worker process with the given id.
func (c *Cluster) Worker(id string) *Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.workers[id]
}

func (c *Cluster) start(name string, env []string, args ...string) *Proc {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(append(os.Environ(), "WEIR_CACHE_DIR="+filepath.Join(c.dir, "cache")), env...)
	p := &Proc{Name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("starting %s: %v", name, err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Kill kills the process with SIGKILL and waits for it.
func (p *Proc) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout for the process to exit,
// returning its exit error (nil for a clean exit).
func (p *Proc) Stop(timeout time.Duration) error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if st := p.cmd.ProcessState; !st.Success() {
			return fmt.Errorf("%s exited with %v", p.Name, st)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %v of SIGTERM", p.Name, timeout)
	}
}

// Output is what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// PeakRSS is the process's peak resident set (VmHWM), in bytes.
func (p *Proc) PeakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", p.Pid())
}

// stopAll sends SIGTERM to every process, then SIGKILL to those still
// running after a grace period, and logs the output of each on failure.
func (c *Cluster) stopAll() {
	c.mu.Lock()
	procs := append([]*Proc(nil), c.procs...)
	c.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(15 * time.Second)
	for _, p := range procs {
		select {
		case <-p.done:
		case <-deadline:
			p.cmd.Process.Kill()
			<-p.done
		}
		if c.t.Failed() {
			c.t.Logf("--- %s:\n%s", p.Name, tail(p.Output(), 60))
		}
	}
}

// Submit submits a job spec with `weir job submit --detached` and
// returns the job's id; args are more flags of the command.
func (c *Cluster) Submit(spec string, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, append([]string{"job", "submit", spec, "--detached", "--output", "json", "--coordinator", c.URL}, args...)...)
	cmd.Env = append(os.Environ(), "WEIR_CACHE_DIR="+filepath.Join(c.dir, "cache"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("weir job submit %s: %v\n%s", spec, err, stderr.String())
	}
	var st api.JobStatus
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
		c.t.Fatalf("weir job submit --output json printed %q: %v", stdout.String(), err)
	}
	return st.ID
}

// CLI runs `weir args... --coordinator URL` and returns its standard
// output, failing the test if it fails.
func (c *Cluster) CLI(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, append(args, "--coordinator", c.URL)...)
	cmd.Env = append(os.Environ(), "WEIR_CACHE_DIR="+filepath.Join(c.dir, "cache"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("weir %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// Job returns a job's status.
func (c *Cluster) Job(id string) api.JobStatus {
	c.t.Helper()
	st, err := c.Client.Job(context.Background(), id)
	if err != nil {
		c.t.Fatalf("job %s: %v", id, err)
	}
	return st
}

// Wait waits until the job has ended and returns its status.
func (c *Cluster) Wait(id string, timeout time.Duration) api.JobStatus {
	c.t.Helper()
	var st api.JobStatus
	c.WaitFor("job "+id+" to end", timeout, func() bool {
		st = c.Job(id)
		return st.State.Terminal()
	})
	return st
}

// WaitFinished waits until the job has ended and fails the test unless
// it finished, in attempt minAttempt or a later one (after restarts).
func (c *Cluster) WaitFinished(id string, timeout time.Duration, minAttempt int) api.JobStatus {
	c.t.Helper()
	st := c.Wait(id, timeout)
	if st.State != api.StateFinished {
		c.t.Fatalf("job %s: %s (%s)", id, st.State, st.Message)
	}
	if st.Attempt < minAttempt {
		c.t.Fatalf("job %s finished in attempt %d, want %d or later", id, st.Attempt, minAttempt)
	}
	return st
}

// WaitFor polls cond until it holds, failing the test after timeout.
func (c *Cluster) WaitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 4<<20 {
		return len(p), nil // enough to tell what happened
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// Build builds the weir binary to bin from the repository at root.
func Build(root, bin string) error {
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/weir")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building weir: %v\n%s", err, out)
	}
	return nil
}
