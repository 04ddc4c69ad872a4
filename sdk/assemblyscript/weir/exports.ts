// The exports of a weir module (ABI v1). `weir module build` compiles this
// file as an entry beside the operator's own, so that the module exports
// exactly these functions (and _initialize, the start function, which runs
// the operator's top-level registrations).
import { ABI_VERSION, _buffer, _call, _describe } from "weir";

export function weir_abi_version(): i32 {
  return ABI_VERSION;
}

export function weir_describe(): void {
  _describe();
}

export function weir_buffer(size: i32): i32 {
  return _buffer(size);
}

export function weir_call(op: i32, method: i32, len: i32): i32 {
  return _call(op, method, len);
}
