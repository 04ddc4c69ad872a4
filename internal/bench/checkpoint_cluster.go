package bench

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/coordinator/slots"
	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/client"
	"github.com/weirstream/weir/netstack"
)

// The recovery run's settings that are not the cluster's defaults.
const (
	// recoverySlots per worker: with parallelism 2, the workers left after
	// a kill always have the slots for the next attempt.
	recoverySlots = 2
	// recoveryPoll is how often the bench asks the coordinator.
	recoveryPoll = 20 * time.Millisecond
	// defaultHeartbeatInterval is `weir coordinator`'s default, which the
	// bench does not change: subtask metrics reach the coordinator with
	// the heartbeats, so the first record is seen up to one interval late.
	defaultHeartbeatInterval = 500 * time.Millisecond
)

// recoveryRun starts a coordinator and o.Workers worker processes of
// o.Binary on 127.0.0.1, runs Nexmark q5 on them (pebble, checkpoints
// every o.Interval, restart strategy fixed-delay with its default delay
// unless o.RestartDelay, a paced unbounded source), SIGKILLs a worker
// that runs some of its subtasks once two checkpoints completed, and
// measures from the kill to the first record the next attempt
// processed, with the coordinator's default heartbeat timeout unless
// o.HeartbeatTimeout.
func recoveryRun(ctx context.Context, o CheckpointOptions) (*RecoveryRun, error) {
	bin := o.Binary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "weir-bench-recovery-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	spec, err := recoverySpec(filepath.Join(o.SpecDir, "q5.yaml"), dir, o)
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	url := "http://" + addr
	env := os.Environ()
	if o.CacheDir != "" {
		env = append(env, "WEIR_CACHE_DIR="+o.CacheDir)
	}
	procs := map[string]*exec.Cmd{}
	logs := &syncBuffer{} // the processes' output, for errors
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			_ = p.Wait()
		}
	}()
	start := func(name string, args ...string) error {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			return err
		}
		procs[name] = cmd
		return nil
	}
	heartbeat := o.HeartbeatTimeout
	if heartbeat == 0 {
		heartbeat = slots.DefaultHeartbeatTimeout
	}
	if err := start("coordinator", "coordinator", "--listen", addr, "--data-dir", dir, "--heartbeat-timeout", heartbeat.String()); err != nil {
		return nil, err
	}
	for i := range o.Workers {
		id := fmt.Sprintf("bench-%d", i)
		if err := start(id, "worker", "--coordinator", url, "--data-dir", dir, "--slots", strconv.Itoa(recoverySlots), "--id", id); err != nil {
			return nil, err
		}
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s; the processes said:\n%s", fmt.Sprintf(format, args...), tail(logs.String(), 30))
	}
	c, err := client.New(url, client.Options{})
	if err != nil {
		return nil, err
	}
	if err := waitWorkers(ctx, c, o.Workers); err != nil {
		return nil, fail("%v", err)
	}
	id, err := submitDetached(ctx, bin, spec, url, env)
	if err != nil {
		return nil, err
	}
	defer func() { _, _ = c.Cancel(context.Background(), id) }()
	// Two checkpoints completed: the job runs steadily and has one to
	// restore; the victim is a worker that runs some of its subtasks.
	var victim string
	if err := poll(ctx, 3*time.Minute, func() (bool, error) {
		s, err := c.Job(ctx, id)
		if err != nil {
			return false, err
		}
		if s.State.Terminal() {
			return false, fmt.Errorf("job %s %s before the kill: %s", id, s.State, s.Message)
		}
		if s.Checkpoints == nil || s.Checkpoints.Completed < 2 || !allRunning(s) {
			return false, nil
		}
		for _, t := range s.Subtasks {
			if t.Worker != "" && procs[t.Worker] != nil {
				victim = t.Worker
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return nil, fail("waiting for two checkpoints: %v", err)
	}
	if err := procs[victim].Process.Signal(syscall.SIGKILL); err != nil {
		return nil, err
	}
	killed := time.Now()
	_ = procs[victim].Wait()
	delete(procs, victim)
	var detected, canceled, running, first time.Duration
	var timeline []string
	last := ""
	if err := poll(ctx, 2*time.Minute, func() (bool, error) {
		s, err := c.Job(ctx, id)
		if err != nil {
			return false, err
		}
		now := time.Since(killed)
		if line := recoveryState(s); line != last {
			last = line
			timeline = append(timeline, fmt.Sprintf("%6.2f s  %s", now.Seconds(), line))
		}
		if s.State.Terminal() {
			return false, fmt.Errorf("job %s %s after the kill: %s", id, s.State, s.Message)
		}
		if detected == 0 && (s.Attempt > 1 || s.State == api.StateRestarting) {
			detected = now
		}
		if detected > 0 && canceled == 0 && !anyIn(s, 1, api.StateCanceling) {
			canceled = now
		}
		if s.Attempt < 2 {
			return false, nil
		}
		if running == 0 && allRunning(s) {
			running = now
		}
		for _, t := range s.Subtasks {
			if t.Attempt >= 2 && t.Metrics.RecordsIn > 0 {
				first = now
				// Seen together within one poll:
				running = cmp.Or(running, first)
				canceled = cmp.Or(canceled, running)
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return nil, fail("waiting for the job to process records again: %v", err)
	}
	var no netstack.Options
	no.EnsureDefaults()
	drain := no.DrainTimeout
	delay := o.RestartDelay
	if delay == 0 {
		delay = jobspec.DefaultRestartDelay
	}
	r := &RecoveryRun{Workers: o.Workers, Seconds: first.Seconds(), Detected: detected.Seconds(), Canceled: canceled.Seconds(), Restarted: running.Seconds(),
		Timeline: timeline,
		Timeouts: map[string]string{
			"heartbeat timeout (weir coordinator --heartbeat-timeout)":                        heartbeat.String(),
			"heartbeat interval, also how often metrics are reported":                         defaultHeartbeatInterval.String(),
			"restart delay (fixed-delay restart.delay)":                                       delay.String(),
			"checkpoint interval":                                                             o.Interval.String(),
			"netstack drain timeout (a closing producer waits this long for credit; no flag)": drain.String(),
		}}
	phases := []struct {
		name string
		d    time.Duration
	}{
		{"failure detection (heartbeat timeout " + heartbeat.String() + ")", detected},
		{"cancel of the other subtasks (a producer's close waits up to the netstack drain timeout " + drain.String() + " for credit from the killed worker)", canceled - detected},
		{"redeployment (what is left of the restart delay " + delay.String() + ", slots, deployment, restore)", running - canceled},
		{"first record after running (seen through heartbeats every " + defaultHeartbeatInterval.String() + ")", first - running},
	}
	best := phases[0]
	for _, p := range phases[1:] {
		if p.d > best.d {
			best = p
		}
	}
	r.Dominant = fmt.Sprintf("%s: %.1f s of %.1f s", best.name, best.d.Seconds(), first.Seconds())
	return r, nil
}

// anyIn says whether a subtask of attempt is in state.
func anyIn(s api.JobStatus, attempt int, state api.State) bool {
	for _, t := range s.Subtasks {
		if t.Attempt == attempt && t.State == state {
			return true
		}
	}
	return false
}

// recoveryState is one line of the recovery's timeline: the job's state,
// attempt and message and how many subtasks of each attempt are in
// which state.
func recoveryState(s api.JobStatus) string {
	counts := map[string]int{}
	var keys []string
	for _, t := range s.Subtasks {
		k := fmt.Sprintf("attempt %d %s", t.Attempt, t.State)
		if counts[k] == 0 {
			keys = append(keys, k)
		}
		counts[k]++
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "job %s, attempt %d", s.State, s.Attempt)
	if s.Message != "" {
		fmt.Fprintf(&b, " (%s)", s.Message)
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "; %d %s", counts[k], k)
	}
	return b.String()
}

// recoverySpec writes Nexmark q5 for the recovery run: parallelism 2,
// pebble, sinks replaced by discard, a source of events paced to
// recoveryRate per second that outlasts the run, checkpoints every
// o.Interval and the fixed-delay restart strategy.
func recoverySpec(path, dir string, o CheckpointOptions) (string, error) {
	restart := "restart: {strategy: fixed-delay}\n"
	if o.RestartDelay > 0 {
		restart = fmt.Sprintf("restart: {strategy: fixed-delay, delay: %s}\n", o.RestartDelay)
	}
	return rewriteSpec(path, filepath.Join(dir, "q5-recovery.yaml"), fmt.Sprintf("count: %d, wall_rate: %d", 3600*recoveryRate, recoveryRate),
		2, "pebble", fmt.Sprintf("checkpoints: {interval: %s}\n", o.Interval)+restart)
}

// recoveryRate is the recovery run's events per second: a steady load
// well within two cores.
const recoveryRate = 20_000

// syncBuffer gathers the output of several processes' pipes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
