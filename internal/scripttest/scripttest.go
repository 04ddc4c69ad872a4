// Package scripttest runs script-driven tests of deterministic cores: a
// testdata/*.txt file is a list of commands, each followed by the output
// the test expects, and a test's handler turns each command into events
// for the core under test and prints what came out. Run the tests with
// -rewrite to write the actual output into the files instead of comparing;
// then read the diff (git diff) as the review of the change.
//
// A file looks like this:
//
//	# A comment line; blank lines separate commands.
//	register w1 slots=2 now=0s
//	----
//	ok
//
//	request job=a tasks=(1,2)
//	extra input lines
//	belong to the command
//	----
//	allocated a attempt=1
//
// A command is a line of words: its name, then arguments, each a bare word
// (a positional argument), key=value, key=(v1,v2) or key="a quoted value".
// Lines after it up to the "----" line are its input. The expected output
// runs to the next blank line; an output that has blank lines of its own is
// written between a "----" line and a "----" "----" pair:
//
//	cmd
//	----
//	----
//	first part
//
//	second part
//	----
//	----
package scripttest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "write the actual output of script tests into their testdata files")

// Arg is one argument of a command: Key alone for a bare word, Key and
// Vals for key=value or key=(v1,v2).
type Arg struct {
	Key  string
	Vals []string
}

// Cmd is one command of a script.
type Cmd struct {
	// Pos is "file:line" of the command, for messages.
	Pos  string
	Name string
	Args []Arg
	// Input is the text between the command line and "----", without
	// the final newline.
	Input string

	t    testing.TB
	used map[string]bool
}

// Has reports whether the command has an argument key (bare or with
// values).
func (c *Cmd) Has(key string) bool {
	_, ok := c.arg(key)
	return ok
}

func (c *Cmd) arg(key string) (Arg, bool) {
	for _, a := range c.Args {
		if a.Key == key {
			if c.used != nil {
				c.used[key] = true
			}
			return a, true
		}
	}
	return Arg{}, false
}

// Fatalf stops the test with a message that names the command's place.
func (c *Cmd) Fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("%s: %s: %s", c.Pos, c.Name, fmt.Sprintf(format, args...))
}

// Positional returns the bare-word arguments in order.
func (c *Cmd) Positional() []string {
	var out []string
	for _, a := range c.Args {
		if a.Vals == nil {
			out = append(out, a.Key)
		}
	}
	return out
}

// Str returns the single value of key, or def when it is absent.
func (c *Cmd) Str(key, def string) string {
	c.t.Helper()
	a, ok := c.arg(key)
	if !ok {
		return def
	}
	if len(a.Vals) != 1 {
		c.Fatalf("%s wants one value, got %d", key, len(a.Vals))
	}
	return a.Vals[0]
}

// MustStr returns the single value of key and fails the test when the
// command has none.
func (c *Cmd) MustStr(key string) string {
	c.t.Helper()
	if !c.Has(key) {
		c.Fatalf("argument %s= is required", key)
	}
	return c.Str(key, "")
}

// Strs returns the values of key, nil when it is absent.
func (c *Cmd) Strs(key string) []string {
	a, _ := c.arg(key)
	return a.Vals
}

// Int returns key as an integer, or def when it is absent.
func (c *Cmd) Int(key string, def int) int {
	c.t.Helper()
	s := c.Str(key, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		c.Fatalf("%s=%s: want an integer", key, s)
	}
	return n
}

// Float returns key as a float, or def when it is absent.
func (c *Cmd) Float(key string, def float64) float64 {
	c.t.Helper()
	s := c.Str(key, "")
	if s == "" {
		return def
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		c.Fatalf("%s=%s: want a number", key, s)
	}
	return f
}

// Duration returns key as a Go duration ("1.5s"), or def when it is
// absent.
func (c *Cmd) Duration(key string, def time.Duration) time.Duration {
	c.t.Helper()
	s := c.Str(key, "")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		c.Fatalf("%s=%s: want a duration", key, s)
	}
	return d
}

// InputLines returns the input split in lines, blank lines left out.
func (c *Cmd) InputLines() []string {
	var out []string
	for _, l := range strings.Split(c.Input, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// ParseLine splits a line into words as a command line is split: bare
// words, key=value, key=(a,b), key="quoted value".
func ParseLine(line string) ([]Arg, error) {
	var args []Arg
	s := strings.TrimSpace(line)
	for s != "" {
		var word string
		var a Arg
		end := strings.IndexAny(s, " \t=")
		if end < 0 {
			end = len(s)
		}
		word, s = s[:end], s[end:]
		a.Key = word
		if strings.HasPrefix(s, "=") {
			s = s[1:]
			switch {
			case strings.HasPrefix(s, "("):
				close := strings.IndexByte(s, ')')
				if close < 0 {
					return nil, fmt.Errorf("%s=(: no closing parenthesis", word)
				}
				inner := s[1:close]
				s = s[close+1:]
				a.Vals = []string{}
				if strings.TrimSpace(inner) != "" {
					for _, v := range strings.Split(inner, ",") {
						a.Vals = append(a.Vals, strings.TrimSpace(v))
					}
				}
			case strings.HasPrefix(s, `"`):
				close := strings.IndexByte(s[1:], '"')
				if close < 0 {
					return nil, fmt.Errorf(`%s=": no closing quote`, word)
				}
				a.Vals = []string{s[1 : close+1]}
				s = s[close+2:]
			default:
				end := strings.IndexAny(s, " \t")
				if end < 0 {
					end = len(s)
				}
				a.Vals = []string{s[:end]}
				s = s[end:]
			}
		}
		if a.Key == "" {
			return nil, fmt.Errorf("empty argument name near %q", s)
		}
		args = append(args, a)
		s = strings.TrimLeft(s, " \t")
	}
	return args, nil
}

// block is one command of a file with its expected output.
type block struct {
	cmd      Cmd
	line     int // of the command
	expected string
}

// parse reads a script file.
func parse(path string, data string) ([]block, error) {
	lines := strings.Split(data, "\n")
	var out []block
	i := 0
	for i < len(lines) {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
			i++
			continue
		}
		b := block{line: i + 1}
		args, err := ParseLine(l)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		b.cmd = Cmd{Pos: fmt.Sprintf("%s:%d", path, i+1), Name: args[0].Key, Args: args[1:]}
		i++
		var input []string
		for i < len(lines) && lines[i] != "----" {
			input = append(input, lines[i])
			i++
		}
		if i == len(lines) {
			return nil, fmt.Errorf("%s:%d: command %s has no ---- line", path, b.line, b.cmd.Name)
		}
		b.cmd.Input = strings.Join(input, "\n")
		i++ // ----
		var exp []string
		if i < len(lines) && lines[i] == "----" {
			// Output with blank lines, up to "----" "----".
			i++
			for i+1 < len(lines) && (lines[i] != "----" || lines[i+1] != "----") {
				exp = append(exp, lines[i])
				i++
			}
			if i+1 >= len(lines) {
				return nil, fmt.Errorf("%s:%d: command %s: output opened with ---- ---- is not closed", path, b.line, b.cmd.Name)
			}
			i += 2
		} else {
			for i < len(lines) && strings.TrimSpace(lines[i]) != "" {
				exp = append(exp, lines[i])
				i++
			}
		}
		b.expected = strings.Join(exp, "\n")
		out = append(out, b)
	}
	return out, nil
}

// format writes a block back in the file syntax with the given output.
func format(w *strings.Builder, raw string, output string) {
	w.WriteString(raw)
	w.WriteString("----\n")
	if strings.Contains(output, "\n\n") || strings.HasPrefix(output, "\n") {
		w.WriteString("----\n")
		w.WriteString(output)
		w.WriteString("\n----\n----\n")
		return
	}
	if output != "" {
		w.WriteString(output)
		w.WriteString("\n")
	}
}

// Handler runs one command and returns its output. It may keep state
// between the commands of one file (a closure made per file).
type Handler func(t *testing.T, c *Cmd) string

// RunFile runs the script at path, each command through h, and compares
// (or, with -rewrite, replaces) the expected outputs.
func RunFile(t *testing.T, path string, h Handler) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	blocks, err := parse(path, text)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(text, "\n")
	var rewritten strings.Builder
	next := 0 // first line (0-based) not yet copied to rewritten
	for _, b := range blocks {
		c := b.cmd
		c.t = t
		c.used = map[string]bool{}
		out := strings.TrimRight(h(t, &c), "\n")
		for _, a := range c.Args {
			if a.Vals != nil && !c.used[a.Key] {
				t.Fatalf("%s: %s: argument %s is not used by the test", c.Pos, c.Name, a.Key)
			}
		}
		if *rewrite {
			// Copy comments and blank lines before the command and the
			// command with its input, then the new output.
			end := b.line - 1
			for end < len(lines) && lines[end] != "----" {
				end++
			}
			var raw strings.Builder
			for _, l := range lines[next:end] {
				raw.WriteString(l)
				raw.WriteString("\n")
			}
			format(&rewritten, raw.String(), out)
			// Skip the old output.
			next = end + 1
			if next < len(lines) && lines[next] == "----" {
				next++
				for next+1 < len(lines) && (lines[next] != "----" || lines[next+1] != "----") {
					next++
				}
				next += 2
			} else {
				for next < len(lines) && strings.TrimSpace(lines[next]) != "" {
					next++
				}
			}
			continue
		}
		if out != b.expected {
			t.Errorf("%s: %s: output differs (run with -rewrite to accept)\n--- want\n%s\n--- got\n%s", c.Pos, c.Name, b.expected, out)
		}
	}
	if *rewrite {
		for _, l := range lines[min(next, len(lines)):] {
			rewritten.WriteString(l)
			rewritten.WriteString("\n")
		}
		s := strings.TrimRight(rewritten.String(), "\n") + "\n"
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Walk runs every *.txt file under dir as a subtest named after the file,
// each with a fresh handler from newHandler.
func Walk(t *testing.T, dir string, newHandler func(t *testing.T) Handler) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no scripts in %s", dir)
	}
	sort.Strings(paths)
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".txt")
		t.Run(name, func(t *testing.T) {
			RunFile(t, p, newHandler(t))
		})
	}
}

// Lines is a helper for handlers: it collects output lines.
type Lines struct{ b strings.Builder }

// Printf appends a line.
func (l *Lines) Printf(format string, args ...any) {
	fmt.Fprintf(&l.b, format, args...)
	l.b.WriteByte('\n')
}

// String returns the lines.
func (l *Lines) String() string { return l.b.String() }
