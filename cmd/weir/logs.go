package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// terminal serializes what `weir run` writes to stderr: module logs and the
// progress block, which is redrawn in place. A log line first erases the
// block, so the next redraw starts below the line.
type terminal struct {
	mu    sync.Mutex
	w     io.Writer
	lines int // lines of the progress block on screen
}

func (t *terminal) eraseLocked() {
	if t.lines > 0 {
		fmt.Fprintf(t.w, "\x1b[%dA\x1b[J", t.lines)
		t.lines = 0
	}
}

// logHandler prints the engine's log records on the terminal, one line
// each: a module's own lines as "[operator/subtask] level: message", the
// engine's warnings as "weir: level: message (attributes)". The engine
// rate-limits module lines and reports what it dropped.
type logHandler struct {
	t     *terminal
	debug bool
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.debug || l >= slog.LevelInfo
}

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var op, sub string
	module := false
	var rest []string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "operator":
			op = a.Value.String()
		case "subtask":
			sub = a.Value.String()
		case "module_log":
			module = a.Value.Bool()
		default:
			rest = append(rest, a.Key+"="+a.Value.String())
		}
		return true
	})
	level := strings.ToLower(r.Level.String())
	var line string
	if module {
		line = fmt.Sprintf("[%s/%s] %s: %s\n", op, sub, level, r.Message)
	} else {
		if r.Level < slog.LevelWarn && !h.debug {
			return nil
		}
		where := ""
		if op != "" {
			where = fmt.Sprintf(" operator %s subtask %s", op, sub)
		}
		line = fmt.Sprintf("weir: %s:%s %s", level, where, r.Message)
		if len(rest) > 0 {
			line += " (" + strings.Join(rest, ", ") + ")"
		}
		line += "\n"
	}
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	h.t.eraseLocked()
	_, err := io.WriteString(h.t.w, line)
	return err
}

func (h *logHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logHandler) WithGroup(string) slog.Handler      { return h }
