// Command nexmark is the weir operator module of the Nexmark queries q0,
// q1, q2, q3, q4, q5, q7 and q8: the operators live in package queries,
// which registers them when imported. See README.md and the job specs
// q*.yaml beside this file.
//
// Build it with `weir module build examples/nexmark`, or
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o nexmark.wasm ./examples/nexmark
package main

import _ "github.com/weirstream/weir/examples/nexmark/queries"

func main() {}
