package task

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Bounds on module logs, per operator subtask: the ring of recent lines a
// REST handler (weir job logs) reads, and the rate at which lines reach the
// Logger (the terminal in weir run). A module that logs in a loop costs
// at most logRing lines of memory and logRate lines a second of output.
const (
	logRing  = 128 // lines kept per operator subtask
	logRate  = 20  // lines per second passed on to the Logger
	logBurst = 100 // lines passed on at once before the rate applies
)

// LogLine is one line an operator logged.
type LogLine struct {
	Time     time.Time  `json:"time"`
	Operator string     `json:"operator"`
	Subtask  int        `json:"subtask"`
	Level    slog.Level `json:"level"`
	Message  string     `json:"message"`
}

// LogStats count an operator subtask's lines.
type LogStats struct {
	Operator string `json:"operator"`
	Subtask  int    `json:"subtask"`
	Lines    int64  `json:"lines"`
	// Dropped lines were kept in the ring but not passed on to the
	// Logger: they came faster than the rate limit.
	Dropped int64 `json:"dropped"`
}

// logBook is a job's log sinks, one per operator subtask.
type logBook struct {
	mu      sync.Mutex
	streams map[logKey]*logStream
}

type logKey struct {
	op      string
	subtask int
}

// logStream is one operator subtask's sink: a ring of recent lines and a
// token bucket for the Logger. Written by the subtask's goroutine, read by
// anyone.
type logStream struct {
	mu      sync.Mutex
	ring    []LogLine
	next    int // where the next line goes once the ring is full
	lines   int64
	dropped int64 // in all
	pending int64 // dropped since the last line passed on
	tokens  float64
	last    time.Time
}

func (b *logBook) stream(op string, subtask int) *logStream {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.streams == nil {
		b.streams = map[logKey]*logStream{}
	}
	k := logKey{op, subtask}
	s := b.streams[k]
	if s == nil {
		s = &logStream{tokens: logBurst}
		b.streams[k] = s
	}
	return s
}

// add keeps a line and reports whether it may go on to the Logger, and
// how many lines were dropped before it.
func (s *logStream) add(l LogLine) (pass bool, droppedBefore int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines++
	if len(s.ring) < logRing {
		s.ring = append(s.ring, l)
	} else {
		s.ring[s.next] = l
		s.next = (s.next + 1) % logRing
	}
	if !s.last.IsZero() {
		s.tokens = min(logBurst, s.tokens+l.Time.Sub(s.last).Seconds()*logRate)
	}
	s.last = l.Time
	if s.tokens < 1 {
		s.dropped++
		s.pending++
		return false, 0
	}
	s.tokens--
	d := s.pending
	s.pending = 0
	return true, d
}

func (s *logStream) snapshot() []LogLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]LogLine, 0, len(s.ring))
	out = append(out, s.ring[s.next:]...)
	return append(out, s.ring[:s.next]...)
}

// log records a line of an operator subtask and passes it on to the
// Logger, rate-limited; when lines were dropped, a note saying how many
// comes first.
func (r *Run) logLine(op string, subtask int, level slog.Level, msg string) {
	s := r.logs.stream(op, subtask)
	now := time.Now()
	pass, dropped := s.add(LogLine{Time: now, Operator: op, Subtask: subtask, Level: level, Message: msg})
	if !pass {
		return
	}
	if dropped > 0 {
		r.log.Warn(fmt.Sprintf("(%d log lines dropped: more than %d a second)", dropped, logRate), "operator", op, "subtask", subtask, "module_log", true)
	}
	r.log.Log(r.ctx, level, msg, "operator", op, "subtask", subtask, "module_log", true)
}

// Logs returns the recent log lines of an operator (every operator when
// op is empty), at most logRing per subtask, oldest first.
func (r *Run) Logs(op string) []LogLine {
	r.logs.mu.Lock()
	var streams []*logStream
	for k, s := range r.logs.streams {
		if op == "" || k.op == op {
			streams = append(streams, s)
		}
	}
	r.logs.mu.Unlock()
	var out []LogLine
	for _, s := range streams {
		out = append(out, s.snapshot()...)
	}
	slices.SortStableFunc(out, func(a, b LogLine) int { return a.Time.Compare(b.Time) })
	return out
}

// LogStats returns the line counts of every operator subtask that logged.
func (r *Run) LogStats() []LogStats {
	r.logs.mu.Lock()
	defer r.logs.mu.Unlock()
	out := make([]LogStats, 0, len(r.logs.streams))
	for k, s := range r.logs.streams {
		s.mu.Lock()
		out = append(out, LogStats{Operator: k.op, Subtask: k.subtask, Lines: s.lines, Dropped: s.dropped})
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b LogStats) int {
		if a.Operator != b.Operator {
			if a.Operator < b.Operator {
				return -1
			}
			return 1
		}
		return a.Subtask - b.Subtask
	})
	return out
}

// LogStream names one operator subtask's log stream.
type LogStream struct {
	Operator string
	Subtask  int
}

// LogsAfter returns the lines each stream got after the first seen[k]
// (those still in its ring, oldest first) and moves seen past them: a
// reader shipping logs elsewhere (a worker's heartbeats) calls it
// repeatedly with the same map.
func (r *Run) LogsAfter(seen map[LogStream]int64) []LogLine {
	r.logs.mu.Lock()
	streams := make(map[LogStream]*logStream, len(r.logs.streams))
	for k, s := range r.logs.streams {
		streams[LogStream{k.op, k.subtask}] = s
	}
	r.logs.mu.Unlock()
	var out []LogLine
	for k, s := range streams {
		s.mu.Lock()
		n := s.lines - seen[k]
		seen[k] = s.lines
		s.mu.Unlock()
		if n <= 0 {
			continue
		}
		lines := s.snapshot()
		out = append(out, lines[max(0, len(lines)-int(n)):]...)
	}
	return out
}
