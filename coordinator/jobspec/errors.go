package jobspec

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/weirstream/weir/internal/suggest"
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
	best, d := suggest.Closest(s, candidates)
	if best == "" || d > max(1, len(s)/3) {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}
