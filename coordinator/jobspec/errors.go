package jobspec

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Error is one problem in a job spec, where it is and what to do about it.
// Parse returns every problem it finds as an errors.Join of *Error values;
// use Errors to get them back.
type Error struct {
	File  string `json:"file,omitempty"`  // the spec's file name, "" when unknown
	Line  int    `json:"line,omitempty"`  // 1-based; 0 when unknown
	Col   int    `json:"col,omitempty"`   // 1-based
	Field string `json:"field,omitempty"` // the field path, "operators[1].inputs[0].from"; "" for the whole file
	Msg   string `json:"msg"`             // what is wrong; what to do
}

// Error formats e as `file:line:col: field: msg`.
func (e *Error) Error() string {
	var b strings.Builder
	if p := (Pos{File: e.File, Line: e.Line, Col: e.Col}).String(); p != "" {
		b.WriteString(p)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors returns the *Error values in err, in order: err itself, or the
// leaves of an errors.Join tree. Errors of other types are left out.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if e, ok := err.(*Error); ok {
			out = append(out, e)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if e := errors.Unwrap(err); e != nil {
			walk(e)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// sortErrors orders errors by position, keeping the order of errors at the
// same place, so a reader fixes the file top to bottom.
func sortErrors(errs []error) {
	sort.SliceStable(errs, func(a, b int) bool {
		ea, oka := errs[a].(*Error)
		eb, okb := errs[b].(*Error)
		if !oka || !okb {
			return false
		}
		if ea.Line != eb.Line {
			return ea.Line < eb.Line
		}
		return ea.Col < eb.Col
	})
}

// MaxErrors bounds the problems Parse reports; past it, one last error
// says how many more there are.
const MaxErrors = 100

// truncate keeps the first MaxErrors errors.
func truncate(errs []error, file string) []error {
	if len(errs) <= MaxErrors {
		return errs
	}
	more := len(errs) - MaxErrors
	return append(errs[:MaxErrors:MaxErrors], &Error{File: file, Msg: fmt.Sprintf("and %d more problems", more)})
}

// nameList joins names for a message, at most 20 of them.
func nameList(names []string) string {
	const show = 20
	if len(names) <= show {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:show], ", "), len(names)-show)
}

// didYouMean returns ` did you mean "x"?` when one candidate is close
// enough to s to be a typo of it, else "".
func didYouMean(s string, candidates []string) string {
	const maxLen = 64 // a typo of a long name is not worth quadratic time
	if len(s) > maxLen {
		return ""
	}
	best, bestD := "", math.MaxInt
	for _, c := range candidates {
		if len(c) > maxLen {
			continue
		}
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > max(1, len(s)/3) {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
