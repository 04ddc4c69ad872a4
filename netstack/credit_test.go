package netstack

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The credit cores are driven by scripts: each line is an event, and the
// lines starting with "> " after it are the actions it must produce.

func runSenderScript(t *testing.T, script string) {
	t.Helper()
	var s SenderCredits[string]
	var got []string
	flush := func() []string { g := got; got = nil; return g }
	check(t, script, func(cmd string, args []int, word string) error {
		var acts []SenderAction[string]
		switch cmd {
		case "grant":
			acts = s.Grant(args[0], nil)
		case "enqueue":
			acts = s.Enqueue(word, nil)
		case "state":
			got = append(got, fmt.Sprintf("credits=%d backlog=%d", s.Credits(), s.Backlog()))
			return nil
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
		for _, a := range acts {
			got = append(got, a.String())
		}
		return nil
	}, flush)
}

func TestSenderCredits(t *testing.T) {
	for name, script := range map[string]string{
		"no credit, no send": `
enqueue b1
> announce backlog=1
enqueue b2
> announce backlog=2
grant 1
> transmit b1 backlog=1
grant 3
> transmit b2 backlog=0
state
> credits=2 backlog=0
enqueue b3
> transmit b3 backlog=0
enqueue b4
> transmit b4 backlog=0
enqueue b5
> announce backlog=1
`,
		"backlog counts what stays queued": `
enqueue a
> announce backlog=1
enqueue b
> announce backlog=2
enqueue c
> announce backlog=3
grant 2
> transmit a backlog=2
> transmit b backlog=1
state
> credits=0 backlog=1
enqueue d
> announce backlog=2
`,
	} {
		t.Run(name, func(t *testing.T) { runSenderScript(t, script) })
	}
}

func runReceiverScript(t *testing.T, script string) {
	t.Helper()
	var r *ReceiverCredits
	var got []string
	flush := func() []string { g := got; got = nil; return g }
	grants := func(gs []Grant) {
		for _, g := range gs {
			got = append(got, fmt.Sprintf("grant ch%d +%d", g.Ch, g.N))
		}
	}
	check(t, script, func(cmd string, a []int, _ string) error {
		var gs []Grant
		var err error
		switch cmd {
		case "init": // channels exclusive floating
			r, gs = NewReceiverCredits(a[0], a[1], a[2], nil)
		case "recv": // ch backlog
			gs, err = r.Received(a[0], a[1], nil)
		case "backlog":
			gs, err = r.Backlog(a[0], a[1], nil)
		case "release":
			gs = r.Released(a[0], nil)
		case "end":
			gs = r.Ended(a[0], nil)
		case "state":
			var parts []string
			for ch := range r.chans {
				c := r.chans[ch]
				parts = append(parts, fmt.Sprintf("ch%d out=%d held=%d float=%d", ch, c.outstanding, c.held, c.floating))
			}
			got = append(got, fmt.Sprintf("pool=%d %s", r.Pool(), strings.Join(parts, " ")))
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			kind := "error"
			if errors.Is(err, ErrProtocol) {
				kind = "protocol error"
			}
			got = append(got, kind+": "+err.Error())
			return nil
		}
		grants(gs)
		return nil
	}, flush)
}

func TestReceiverCredits(t *testing.T) {
	for name, script := range map[string]string{
		"exclusive credit returns on release": `
init 2 2 0
> grant ch0 +2
> grant ch1 +2
recv 0 0
recv 0 0
state
> pool=0 ch0 out=0 held=2 float=0 ch1 out=2 held=0 float=0
recv 0 0
> protocol error: netstack: protocol violation: channel 0 sent a buffer without credit
release 0
> grant ch0 +1
release 0
> grant ch0 +1
`,
		"floating buffers go to the largest backlog": `
init 3 1 2
> grant ch0 +1
> grant ch1 +1
> grant ch2 +1
recv 0 1
> grant ch0 +1
recv 1 5
> grant ch1 +1
state
> pool=0 ch0 out=1 held=1 float=1 ch1 out=1 held=1 float=1 ch2 out=1 held=0 float=0
release 0
> grant ch1 +1
state
> pool=0 ch0 out=1 held=0 float=0 ch1 out=2 held=1 float=2 ch2 out=1 held=0 float=0
recv 0 0
release 0
> grant ch0 +1
recv 1 0
recv 1 0
release 1
release 1
release 1
> grant ch1 +1
state
> pool=2 ch0 out=1 held=0 float=0 ch1 out=1 held=0 float=0 ch2 out=1 held=0 float=0
`,
		"backlog announcement without a buffer": `
init 2 1 3
> grant ch0 +1
> grant ch1 +1
backlog 1 2
> grant ch1 +1
backlog 0 4
> grant ch0 +2
state
> pool=0 ch0 out=3 held=0 float=2 ch1 out=2 held=0 float=1
`,
		"an ended channel gives its floating credit back": `
init 2 1 2
> grant ch0 +1
> grant ch1 +1
backlog 0 3
> grant ch0 +2
recv 0 2
end 0
state
> pool=2 ch0 out=0 held=1 float=0 ch1 out=1 held=0 float=0
recv 0 0
> protocol error: netstack: protocol violation: channel 0 sent after its end
backlog 1 3
> grant ch1 +2
release 0
state
> pool=0 ch0 out=0 held=0 float=0 ch1 out=3 held=0 float=2
`,
		"bad peers": `
init 1 1 0
> grant ch0 +1
recv 7 0
> protocol error: netstack: protocol violation: unknown channel 7
recv 0 -1
> protocol error: netstack: protocol violation: channel 0 announced backlog -1
`,
	} {
		t.Run(name, func(t *testing.T) { runReceiverScript(t, script) })
	}
}

// check walks a script: each command line runs do, and the "> " lines
// after it must equal what the command produced, in order.
func check(t *testing.T, script string, do func(cmd string, args []int, word string) error, produced func() []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(script), "\n")
	for i := 0; i < len(lines); {
		line := strings.TrimSpace(lines[i])
		i++
		fields := strings.Fields(line)
		var args []int
		word := ""
		for _, f := range fields[1:] {
			var n int
			if _, err := fmt.Sscan(f, &n); err == nil {
				args = append(args, n)
			} else {
				word = f
			}
		}
		if err := do(fields[0], args, word); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		var want []string
		for i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), ">") {
			want = append(want, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[i]), ">")))
			i++
		}
		got := produced()
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("after line %d %q:\ngot:\n%s\nwant:\n%s", i, line, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}
