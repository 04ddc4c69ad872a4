package scripttest

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func handler(t *testing.T) Handler {
	return func(t *testing.T, c *Cmd) string {
		switch c.Name {
		case "sum":
			total := 0
			for _, s := range append(c.Positional(), c.Strs("n")...) {
				n, err := strconv.Atoi(s)
				if err != nil {
					c.Fatalf("%v", err)
				}
				total += n
			}
			return strconv.Itoa(total)
		case "echo":
			return "echo " + strings.Join(c.Positional(), " ") + "\nkey=" + c.Str("key", "") +
				"\ninput=" + strings.Join(c.InputLines(), "|")
		case "para":
			return "a\n\nb"
		}
		c.Fatalf("unknown command")
		return ""
	}
}

func TestScripts(t *testing.T) { Walk(t, "testdata", handler) }

func TestParseLine(t *testing.T) {
	got, err := ParseLine(`cmd a k=v l=(x, y) e=() q="s p"`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Arg{{Key: "cmd"}, {Key: "a"}, {Key: "k", Vals: []string{"v"}}, {Key: "l", Vals: []string{"x", "y"}},
		{Key: "e", Vals: []string{}}, {Key: "q", Vals: []string{"s p"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	for _, bad := range []string{`k=(a`, `k="a`, `=x`} {
		if _, err := ParseLine(bad); err == nil {
			t.Errorf("ParseLine(%q) succeeded", bad)
		}
	}
}

// TestRewrite rewrites a copy of basic.txt whose outputs are wrong and
// checks that it comes back equal to the checked-in file.
func TestRewrite(t *testing.T) {
	good, err := os.ReadFile("testdata/basic.txt")
	if err != nil {
		t.Fatal(err)
	}
	stale := strings.Replace(string(good), "----\n10\n", "----\n11\nstale line\n", 1)
	stale = strings.Replace(stale, "----\n----\na\n\nb\n----\n----\n", "----\nold\n", 1)
	stale = strings.Replace(stale, "----\n0\n", "----\n", 1)
	if stale == string(good) {
		t.Fatal("test did not make the copy stale")
	}
	path := filepath.Join(t.TempDir(), "basic.txt")
	if err := os.WriteFile(path, []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	old := *rewrite
	*rewrite = true
	RunFile(t, path, handler(t))
	*rewrite = old
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(good) {
		t.Fatalf("rewritten file:\n%s\nwant:\n%s", got, good)
	}
}
