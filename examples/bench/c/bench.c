/*
 * Benchmark operators for the weir C SDK:
 *
 *   identity  map  returns the record unchanged (the SDK passes it through
 *                  without copying it)
 *   rewrite   map  value "id=<6 digits>;amt=<digits>;note=<text>" (padding
 *                  after the note is ignored) becomes key = the id digits,
 *                  value = decimal of amt*2 (amt has at most 18 digits);
 *                  timestamp and headers are kept; anything else fails the
 *                  batch with "record N: unparsable value ..."
 *
 * rewrite parses 8 bytes at a time (SWAR): in WebAssembly every memory
 * access is bounds-checked, so fewer, wider loads pay off. parse_slow is
 * the plain byte-at-a-time version, used for short values and long amounts.
 */
#include "weir.h"

static int identity(const weir_record *in, weir_emitter *out) { return weir_emit(out, in); }

static int unparsable(void) {
    return weir_error("unparsable value: want id=<6 digits>;amt=<digits>;note=<text>");
}

static inline int is_digit(uint8_t c) { return (uint8_t)(c - '0') < 10; }

/* Parses s[0:n]; on success sets *amt and returns 0. */
static int parse_slow(const uint8_t *s, uint32_t n, uint64_t *amt) {
    if (n < 3 + 6 + 5 + 1 + 6) return unparsable();
    if (s[0] != 'i' || s[1] != 'd' || s[2] != '=' || s[9] != ';' || s[10] != 'a' || s[11] != 'm' ||
        s[12] != 't' || s[13] != '=')
        return unparsable();
    for (int i = 3; i < 9; i++)
        if (!is_digit(s[i])) return unparsable();
    uint64_t a = 0;
    uint32_t i = 14;
    while (i < n && is_digit(s[i])) {
        if (i - 14 == 18) return weir_error("unparsable value: amt has more than 18 digits");
        a = a * 10 + (uint64_t)(s[i] - '0');
        i++;
    }
    if (i == 14 || n - i < 6 || s[i] != ';' || s[i + 1] != 'n' || s[i + 2] != 'o' || s[i + 3] != 't' ||
        s[i + 4] != 'e' || s[i + 5] != '=')
        return unparsable();
    *amt = a;
    return 0;
}

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

#define ONES 0x0101010101010101ull
#define HIGH 0x8080808080808080ull
/* little-endian words of the fixed text */
#define ID_EQ 0x3d6469ull            /* "id=" */
#define AMT_EQ 0x3d746d613bull       /* ";amt=" */
#define NOTE_EQ 0x3d65746f6e3bull    /* ";note=" */

/* High bit set in each byte of w that is not an ASCII digit. */
static inline uint64_t non_digits(uint64_t w) {
    uint64_t a = w ^ (0x30 * ONES); /* digits become 0..9 */
    return (((a & 0x7f7f7f7f7f7f7f7full) + 0x76 * ONES) | a) & HIGH;
}

static int rewrite(const weir_record *in, weir_emitter *out) {
    const uint8_t *s = in->value.ptr;
    uint32_t n = in->value.len;
    uint64_t amt;
    uint32_t nd = 0;
    if (n >= 14 + 8) {
        uint64_t w0 = load64(s), w1 = load64(s + 8), w2 = load64(s + 14);
        uint64_t id = w0 >> 24 | (w1 & 0xff) << 40; /* the 6 id digits */
        if ((w0 & 0xffffff) != ID_EQ || (w1 >> 8 & 0xffffffffffull) != AMT_EQ ||
            (non_digits(id) & 0x808080808080ull) != 0)
            return unparsable();
        uint64_t nondig = non_digits(w2);
        nd = nondig ? (uint32_t)__builtin_ctzll(nondig) >> 3 : 8;
        if (nd == 0) return unparsable();
        if (nd < 8 && n - 14 - nd >= 8 && (load64(s + 14 + nd) & 0xffffffffffffull) == NOTE_EQ) {
            uint64_t d = (w2 ^ (0x30 * ONES)) << (8 * (8 - nd));
            d = (d * 10 + (d >> 8)) & 0x00ff00ff00ff00ffull;
            d = (d * 100 + (d >> 16)) & 0x0000ffff0000ffffull;
            amt = (d * 10000 + (d >> 32)) & 0xffffffffull;
        } else {
            nd = 0;
        }
    }
    if (nd == 0) {
        int rc = parse_slow(s, n, &amt);
        if (rc) return rc;
    }
    uint64_t v = amt * 2;
    uint32_t vl = weir_dec_len(v), hl = in->headers.len;
    uint8_t *p = weir_emit_reserve(out, 0, in->timestamp, 6, vl, hl);
    if (!p) return WEIR_ERR;
    memcpy(p, s + 3, 6);
    weir_put_dec(p + 6, v, vl);
    weir_copy(p + 6 + vl, in->headers.ptr, hl);
    return 0;
}

WEIR_OPERATORS(
    WEIR_MAP("identity", identity),
    WEIR_MAP("rewrite", rewrite))
