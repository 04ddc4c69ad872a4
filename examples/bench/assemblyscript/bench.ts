// The AssemblyScript operator module of `weir bench abi`: the same two maps
// as the Go and C modules.
//
//   identity  returns each record unchanged (the SDK passes it through
//             without copying it)
//   rewrite   value "id=<6 digits>;amt=<digits>;note=<text>" becomes key =
//             the id digits, value = amt*2 in decimal, timestamp and headers
//             kept; anything else fails the batch
//
// Neither allocates: rewrite points the key into the value and writes the
// result into the record's own bytes, which belong to the module during
// the call.
import { Record, fail, map } from "weir";

map("identity", (r: Record): Error | null => null);

// @ts-ignore: decorator
@inline function isDigit(c: u32): bool { return c - 48 < 10; }

// decLen returns the number of decimal digits of v, by comparisons.
function decLen(v: u64): i32 {
  let n = 1;
  while (n < 20 && v >= unchecked(pow10[n])) n++;
  return n;
}

const pow10: StaticArray<u64> = [
  1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
  10000000000, 100000000000, 1000000000000, 10000000000000, 100000000000000,
  1000000000000000, 10000000000000000, 100000000000000000, 1000000000000000000,
  10000000000000000000,
];

map("rewrite", (r: Record): Error | null => {
  const v = r.valuePtr;
  const n = r.valueLen;
  if (n < 15 || (load<u32>(v) & 0xffffff) != 0x3d6469 /* "id=" */ || load<u32>(v, 9) != 0x746d613b /* ";amt" */ || load<u8>(v, 13) != 61) {
    return fail("unparsable value: want id=<6 digits>;amt=<digits>;note=<text>");
  }
  for (let i = 3; i < 9; i++) {
    if (!isDigit(load<u8>(v + i))) return fail("unparsable value: want id=<6 digits>;amt=<digits>;note=<text>");
  }
  let amt: u64 = 0;
  let i = 14;
  while (i < n && isDigit(load<u8>(v + i))) {
    if (i - 14 == 18) return fail("unparsable value: amt has more than 18 digits");
    amt = amt * 10 + <u64>(load<u8>(v + i) - 48);
    i++;
  }
  if (i == 14 || (i < n && load<u8>(v + i) != 59)) return fail("unparsable value: want id=<6 digits>;amt=<digits>;note=<text>");
  amt *= 2;
  // amt*2 has at most one digit more than amt, and v[10:] holds amt's
  // digits and the 4 bytes of "amt=": it fits in place, after the key.
  const out = v + 10;
  const digits = decLen(amt);
  let d = digits - 1;
  // Division by 10 as a multiply and shift while the number fits 32 bits:
  // engines compile i64.div_u to a divide instruction, ~40 cycles.
  while (amt > 0xffffffff) {
    const q = amt / 10;
    store<u8>(out + d, <u8>(48 + amt - q * 10));
    amt = q;
    d--;
  }
  let x = <u32>amt;
  while (d > 0) {
    const q = <u32>((<u64>x * 0xcccccccd) >> 35);
    store<u8>(out + d, <u8>(48 + x - q * 10));
    x = q;
    d--;
  }
  store<u8>(out, <u8>(48 + x));
  r.setKeyRaw(v + 3, 6);
  r.setValueRaw(out, digits);
  return null;
});
