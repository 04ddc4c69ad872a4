package agent

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/control"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/task"
)

// reports returns the state and metrics of every subtask the worker has,
// with time shares over the interval since the last heartbeat.
func (a *Agent) reports() []control.TaskReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []control.TaskReport
	now := time.Now()
	for _, dep := range a.mu.deps {
		var ms map[[2]int]task.SubtaskMetrics
		if dep.run != nil {
			ms = map[[2]int]task.SubtaskMetrics{}
			for _, m := range dep.run.Subtasks() {
				ms[[2]int{m.Vertex, m.Index}] = m
			}
		}
		for _, s := range dep.d.Subtasks {
			r := control.TaskReport{Job: dep.d.Job, Attempt: dep.d.Attempt, Vertex: s.Vertex, Index: s.Index, State: dep.state, Cause: dep.cause}
			if m, ok := ms[[2]int{s.Vertex, s.Index}]; ok {
				r.Metrics, _ = json.Marshal(metrics(dep.d.Vertices[s.Vertex].Name, m, dep.last[[2]int{s.Vertex, s.Index}], now.Sub(dep.lastAt)))
			}
			out = append(out, r)
			if len(out) == control.MaxTasks {
				return out
			}
		}
		dep.last, dep.lastAt = ms, now
	}
	return out
}

// forgetReported drops the deployments whose end the coordinator has now
// been told.
func (a *Agent) forgetReported() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, dep := range a.mu.deps {
		switch dep.state {
		case "finished", "canceled", "failed":
			if dep.reported {
				delete(a.mu.deps, k)
			} else {
				dep.reported = true
			}
		}
	}
}

// metrics turns a subtask's counters into the REST API's figures: time
// shares per second over the last interval (since the start at first).
func metrics(task string, m, prev task.SubtaskMetrics, since time.Duration) api.SubtaskMetrics {
	out := api.SubtaskMetrics{RecordsIn: m.RecordsIn, RecordsOut: m.RecordsOut, BytesIn: m.BytesIn, BytesOut: m.BytesOut}
	span := m.Elapsed - prev.Elapsed
	if prev.Elapsed == 0 || since <= 0 {
		span = m.Elapsed
	}
	if span > 0 {
		perSec := func(d time.Duration) float64 { return math.Round(float64(d)/float64(span)*1000*10) / 10 }
		out.IdleMsPerSec = perSec(m.Idle - prev.Idle)
		out.BackpressuredMsPerSec = perSec(m.Backpressured - prev.Backpressured)
		out.BusyMsPerSec = math.Max(0, 1000-out.IdleMsPerSec-out.BackpressuredMsPerSec)
	}
	if m.Watermark != wasmabi.NoWatermark {
		wm := m.Watermark
		out.Watermark = &wm
	}
	for i, s := range m.Inputs {
		out.Channels = append(out.Channels, api.ChannelMetrics{Direction: "in", Peer: task + " input " + strconv.Itoa(i), Credits: s.Credits, Backlog: s.Backlog})
	}
	for i, s := range m.Outputs {
		out.Channels = append(out.Channels, api.ChannelMetrics{Direction: "out", Peer: task + " output " + strconv.Itoa(i), Credits: s.Credits, Backlog: s.Backlog})
	}
	return out
}

// logs returns the module log lines of every deployment since the last
// heartbeat, at most control.MaxLogs.
func (a *Agent) logs() []control.LogLine {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []control.LogLine
	for _, dep := range a.mu.deps {
		if dep.run == nil {
			continue
		}
		if dep.logSeen == nil {
			dep.logSeen = map[task.LogStream]int64{}
		}
		for _, l := range dep.run.LogsAfter(dep.logSeen) {
			if len(out) == control.MaxLogs {
				return out
			}
			msg := l.Message
			if len(msg) > control.MaxLogLine {
				msg = msg[:control.MaxLogLine]
			}
			out = append(out, control.LogLine{Job: dep.d.Job, Attempt: dep.d.Attempt, Operator: l.Operator, Subtask: l.Subtask, Time: l.Time, Level: l.Level.String(), Message: msg})
		}
	}
	return out
}
