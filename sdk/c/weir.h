/*
 * weir.h - the C SDK for weir operator modules (weir ABI v1).
 *
 * Header only. Write operator functions, then list them once, in exactly one
 * .c file of the module:
 *
 *     #include "weir.h"
 *
 *     static int upper(const weir_record *in, weir_emitter *out) {
 *         uint8_t *v = weir_emit_value(out, in, in->value.len);
 *         if (!v) return WEIR_ERR;
 *         for (uint32_t i = 0; i < in->value.len; i++) {
 *             uint8_t c = in->value.ptr[i];
 *             v[i] = c >= 'a' && c <= 'z' ? c - 32 : c;
 *         }
 *         return 0;
 *     }
 *     static int nonempty(const weir_record *in) { return in->value.len > 0; }
 *
 *     WEIR_OPERATORS(
 *         WEIR_MAP("upper", upper),
 *         WEIR_FILTER("nonempty", nonempty))
 *
 * WEIR_OPERATORS defines the module's exports (weir_abi_version,
 * weir_describe, weir_buffer, weir_call and _initialize); expanding it in two
 * files is a duplicate-symbol link error. Other files of the module include
 * weir.h for the types and helpers only.
 *
 * Build (what `weir module build` runs; see docs/sdk-c.md):
 *
 *     clang --target=wasm32-wasi -O2 -nostartfiles -Wl,--no-entry \
 *           -mbulk-memory -msign-ext -mnontrapping-fptoint -mmutable-globals \
 *           -Wl,--stack-first -Wl,--strip-debug -I<folder of weir.h> \
 *           -o op.wasm op.c
 *
 * Kinds: map, filter, flat_map and process (keyed: value/list/map state and
 * timers). aggregate and co_process are not supported by this SDK.
 *
 * Callbacks return 0 for success; a filter returns a positive value to keep
 * the record, 0 to drop it. Any other value (negative for a filter) fails
 * the whole call: the host gets "record N: <message>", N being the 0-based
 * index of the record in its batch and the message the one given to
 * weir_error (call it before returning, or `return weir_error(..)`).
 *
 * Memory: the input batch lives in a module-owned buffer that the callbacks
 * see through weir_record (read only, valid during the callback). Output is
 * appended to a 64 KiB buffer flushed to the host through weir.output when it
 * fills and at the end of the call; a record emitted unchanged (map returning
 * its input, a filter keeping one) is not copied at all: the SDK hands the
 * host the input bytes. Nothing on the record path calls malloc.
 */
#ifndef WEIR_H
#define WEIR_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__wasm32__)
#error "weir.h builds WebAssembly operator modules: compile with clang --target=wasm32-wasi (see docs/sdk-c.md)"
#endif

#define WEIR_ABI_VERSION 1
#define WEIR_SDK_NAME "c/0.1"

/* Output is flushed to the host once this many bytes are buffered. */
#ifndef WEIR_OUTPUT_FLUSH
#define WEIR_OUTPUT_FLUSH (64u << 10)
#endif

/* Longest error message kept by weir_error (longer ones are cut). */
#ifndef WEIR_ERROR_MAX
#define WEIR_ERROR_MAX 1024u
#endif

/* Distinct counters summed per call (more are sent to the host at once). */
#ifndef WEIR_COUNTERS
#define WEIR_COUNTERS 16
#endif

/* Return value of a failed callback (any non-zero value works). */
#define WEIR_ERR (-1)

/* Operator kinds. */
enum {
    WEIR_KIND_MAP = 1,      /* exactly one output record per input record */
    WEIR_KIND_FILTER = 2,   /* keep or drop each record, unchanged */
    WEIR_KIND_FLAT_MAP = 3, /* any number of output records per input record */
    WEIR_KIND_PROCESS = 4   /* keyed: records and timers, with state */
};

/* Entry kinds (first byte of an encoded entry). */
enum {
    WEIR_ENTRY_RECORD = 1,
    WEIR_ENTRY_WATERMARK = 2,
    WEIR_ENTRY_TIMER = 3,
    WEIR_ENTRY_ACCUMULATOR = 4
};

/* Methods of weir_call. */
enum {
    WEIR_METHOD_OPEN = 0,
    WEIR_METHOD_PROCESS = 1,
    WEIR_METHOD_TIMERS = 2,
    WEIR_METHOD_AGG_ADD = 3,
    WEIR_METHOD_AGG_MERGE = 4,
    WEIR_METHOD_AGG_RESULT = 5,
    WEIR_METHOD_FINISH = 6
};

/* Time domains of timers. */
enum { WEIR_EVENT_TIME = 0, WEIR_PROCESSING_TIME = 1 };

/* Kinds of keyed state. */
enum { WEIR_STATE_VALUE = 1, WEIR_STATE_LIST = 2, WEIR_STATE_MAP = 3 };

/* Operations of the state host function (see weir_state_op). */
enum {
    WEIR_STATE_GET = 1,
    WEIR_STATE_PUT = 2,
    WEIR_STATE_DELETE = 3,
    WEIR_STATE_ENTRIES = 4,
    WEIR_STATE_CLEAR = 5
};

/* Log levels. */
enum { WEIR_LOG_DEBUG = 0, WEIR_LOG_INFO = 1, WEIR_LOG_WARN = 2, WEIR_LOG_ERROR = 3 };

/* The watermark before any watermark has arrived. */
#define WEIR_NO_WATERMARK INT64_MIN

/* ------------------------------------------------------------------ types */

/* A byte string that the SDK or the author owns elsewhere. */
typedef struct weir_bytes {
    const uint8_t *ptr;
    uint32_t len;
} weir_bytes;

/* A record. On input its bytes point into the input batch (read only, valid
 * during the callback); on output they may point anywhere, the emit
 * functions copy them. */
typedef struct weir_record {
    weir_bytes key;
    weir_bytes value;
    weir_bytes headers; /* encoded: (u16 name len, name, u32 value len, value)*;
                           walk with weir_next_header */
    int64_t timestamp;  /* event time, ms since the Unix epoch */
} weir_record;

/* A due timer of a process operator. */
typedef struct weir_timer {
    weir_bytes key;
    int64_t timestamp;
    int domain; /* WEIR_EVENT_TIME or WEIR_PROCESSING_TIME */
} weir_timer;

/* Where a callback emits its output. Use it only through the weir_emit*
 * functions, only during the callback that received it. */
typedef struct weir_emitter {
    weir_record in;           /* the input record of the callback; its encoded
                                 entry, [in.key.ptr - 24, in.headers.ptr +
                                 in.headers.len), may be passed through as is.
                                 in.key.ptr is NULL outside record callbacks. */
    uint8_t *buf;             /* buffered entries, not yet given to the host */
    uint32_t len;
    uint32_t cap;
    const uint8_t *run;       /* then: input entries passed through unchanged, */
    uint64_t tail;            /* [run, run_end); run_end is the low 32 bits
                                 (0 when there is no run). The high 32 bits
                                 count the entries this callback emitted, but
                                 for a pass-through of its input that still
                                 ends the run: that one shows as run_end ==
                                 the end of the input entry. One word, so
                                 that passing a record through costs one
                                 load and one store. */
} weir_emitter;

/* A state declared with weir_state_register. */
typedef int32_t weir_state;

/* Callbacks. */
typedef int (*weir_record_fn)(const weir_record *in, weir_emitter *out);
typedef int (*weir_filter_fn)(const weir_record *in); /* >0 keep, 0 drop, <0 fail */
typedef int (*weir_timer_fn)(const weir_timer *timer, weir_emitter *out);
typedef int (*weir_open_fn)(weir_bytes params); /* params: JSON, maybe empty */
typedef int (*weir_finish_fn)(weir_emitter *out);

/* One operator of the module; build these with the WEIR_MAP, WEIR_FILTER,
 * WEIR_FLAT_MAP and WEIR_PROCESS macros. */
typedef struct weir_operator {
    const char *name;
    int kind;                        /* WEIR_KIND_* */
    weir_record_fn on_record;        /* map, flat_map, process */
    weir_filter_fn filter;           /* filter */
    weir_timer_fn on_timer;          /* process: a due timer */
    weir_open_fn open;               /* optional: once per instance, first */
    weir_finish_fn finish;           /* optional: end of a bounded input */
    const char *const *side_outputs; /* optional: NULL-terminated names */
} weir_operator;

/* ------------------------------------------------------ registration table */

/* Each takes a name, the callback, then optional designated initializers:
 *     WEIR_MAP("upper", upper)
 *     WEIR_FLAT_MAP("split", split, .open = split_open)
 *     WEIR_PROCESS("count", count, .on_timer = count_timer, .open = count_open,
 *                  WEIR_SIDE_OUTPUTS("expired"))
 * Output port n (weir_emit_to) is the n-th name of WEIR_SIDE_OUTPUTS. */
#define WEIR_MAP(NAME, ...) {.name = (NAME), .kind = WEIR_KIND_MAP, .on_record = __VA_ARGS__}
#define WEIR_FILTER(NAME, ...) {.name = (NAME), .kind = WEIR_KIND_FILTER, .filter = __VA_ARGS__}
#define WEIR_FLAT_MAP(NAME, ...) {.name = (NAME), .kind = WEIR_KIND_FLAT_MAP, .on_record = __VA_ARGS__}
#define WEIR_PROCESS(NAME, ...) {.name = (NAME), .kind = WEIR_KIND_PROCESS, .on_record = __VA_ARGS__}
#define WEIR_SIDE_OUTPUTS(...) .side_outputs = (const char *const[]){__VA_ARGS__, (const char *)0}

/* ------------------------------------------------------------ host imports */

#define WEIR__IMPORT(NAME) __attribute__((import_module("weir"), import_name(NAME)))
WEIR__IMPORT("output") void weir__host_output(const void *ptr, uint32_t len);
WEIR__IMPORT("fail") void weir__host_fail(const void *ptr, uint32_t len);
WEIR__IMPORT("log") void weir__host_log(int32_t level, const void *ptr, uint32_t len);
WEIR__IMPORT("counter") void weir__host_counter(const void *ptr, uint32_t len, int64_t delta);
WEIR__IMPORT("state_register") int32_t weir__host_state_register(const void *ptr, uint32_t len, int32_t kind);
WEIR__IMPORT("state") int64_t weir__host_state(int32_t op, int32_t id, const void *kptr, uint32_t klen,
                                               const void *uptr, uint32_t ulen, void *vptr, uint32_t vlen);
WEIR__IMPORT("timer") void weir__host_timer(int32_t op, int32_t domain, int64_t ts, const void *kptr, uint32_t klen);

/* --------------------------------------------------------- SDK-wide state */

typedef struct weir__counter {
    uint32_t len; /* 0: a free slot */
    char name[128];
    int64_t delta;
} weir__counter;

typedef struct weir__globals {
    int inited;
    uint8_t *in; /* input buffer (weir_buffer) */
    uint32_t in_cap;
    weir_emitter out;
    int64_t watermark, processing_time; /* of the current batch */
    weir_bytes key;                     /* key of the current record or timer */
    uint32_t err_len;
    int err_set;
    char err[WEIR_ERROR_MAX];
    uint8_t *scr; /* scratch arena, reset at every call */
    uint32_t scr_used, scr_cap;
    void *scr_old; /* arena blocks outgrown during this call */
    uint32_t ncounters;
    weir__counter counters[WEIR_COUNTERS]; /* summed during a call, sent at its end */
    void (*send_counters)(void); /* set by weir_counter, so that a module that
                                    counts nothing does not import weir.counter */
    uint8_t outbuf[WEIR_OUTPUT_FLUSH];
} weir__globals;

/* Defined by WEIR_OPERATORS. */
extern weir__globals weir__g;

#define WEIR__NOINLINE __attribute__((noinline))
#define WEIR__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEIR__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Stores two 32-bit words, a pointer and a length (or pointer), at dst with
 * one 64-bit store. */
static inline void weir__set2(void *dst, const void *a, uint32_t b) {
    uint64_t v = (uint64_t)(uint32_t)(uintptr_t)a | (uint64_t)b << 32;
    memcpy(dst, &v, 8);
}

static inline uint16_t weir__rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t weir__rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline int64_t weir__rd64(const uint8_t *p) { int64_t v; memcpy(&v, p, 8); return v; }

/* ----------------------------------------------------------------- errors */

/* Sets the message of the failing call and returns WEIR_ERR, so a callback
 * can `return weir_error("bad amount");`. The text is copied. */
static inline int weir_error_bytes(const void *msg, uint32_t len) {
    weir__globals *g = &weir__g;
    if (len > WEIR_ERROR_MAX) len = WEIR_ERROR_MAX;
    if (len) memcpy(g->err, msg, len);
    g->err_len = len;
    g->err_set = 1;
    return WEIR_ERR;
}
static inline int weir_error(const char *msg) { return weir_error_bytes(msg, (uint32_t)strlen(msg)); }

/* Copies n bytes to dst (not overlapping src) and returns dst + n: memcpy
 * for operator code, quicker for short copies (plain loads and stores;
 * memcpy becomes memory.copy, which engines run as a call). */
static inline uint8_t *weir_copy(uint8_t *dst, const uint8_t *src, uint32_t n) {
    if (n <= 16) {
        if (n >= 8) {
            uint64_t a, b;
            memcpy(&a, src, 8);
            memcpy(&b, src + n - 8, 8);
            memcpy(dst, &a, 8);
            memcpy(dst + n - 8, &b, 8);
        } else if (n >= 4) {
            uint32_t a, b;
            memcpy(&a, src, 4);
            memcpy(&b, src + n - 4, 4);
            memcpy(dst, &a, 4);
            memcpy(dst + n - 4, &b, 4);
        } else if (n) {
            uint8_t a = src[0], b = src[n / 2], c = src[n - 1];
            dst[0] = a;
            dst[n / 2] = b;
            dst[n - 1] = c;
        }
    } else {
        memcpy(dst, src, n);
    }
    return dst + n;
}

/* ---------------------------------------------------------------- numbers */

/* The 8 decimal digits of v < 10^8 as ASCII, most significant (a leading
 * zero, maybe) in the lowest byte: arithmetic in one register (SWAR), since
 * table lookups and byte stores each cost a bounds check in WebAssembly. */
static inline uint64_t weir__dec8(uint32_t v) {
    uint64_t hi = (uint64_t)v * 3518437209u >> 45; /* v / 10000 */
    uint64_t x = hi | (uint64_t)(v - (uint32_t)hi * 10000u) << 32;
    uint64_t q = (x * 10486u >> 20) & 0x0000007F0000007Full; /* / 100 in each 32-bit lane */
    uint64_t y = q | (x - q * 100u) << 16;
    uint64_t t = (y * 103u >> 10) & 0x000F000F000F000Full; /* / 10 in each 16-bit lane */
    return (t | (y - t * 10u) << 8) + 0x3030303030303030ull;
}

/* Writes the digits of v < 10^8 without leading zeros (8 bytes stored at
 * buf) and returns how many. */
static inline uint32_t weir__dec8_trim(uint32_t v, char *buf) {
    uint64_t d = weir__dec8(v);
    uint32_t zeros = v ? (uint32_t)__builtin_ctzll(d - 0x3030303030303030ull) >> 3 : 7;
    d >>= zeros * 8;
    memcpy(buf, &d, 8);
    return 8 - zeros;
}

/* Writes v in decimal to buf, which must have room for 20 bytes (whatever
 * the length of the result), and returns the length. */
static inline uint32_t weir_u64_to_dec(uint64_t v, char *buf) {
    if (v < 100000000u) return weir__dec8_trim((uint32_t)v, buf);
    uint64_t a = v / 100000000u, d;
    uint32_t n;
    if (a < 100000000u) {
        n = weir__dec8_trim((uint32_t)a, buf);
    } else {
        uint64_t c = a / 100000000u;
        n = weir__dec8_trim((uint32_t)c, buf);
        d = weir__dec8((uint32_t)(a - c * 100000000u));
        memcpy(buf + n, &d, 8);
        n += 8;
    }
    d = weir__dec8((uint32_t)(v - a * 100000000u));
    memcpy(buf + n, &d, 8);
    return n + 8;
}

/* The number of decimal digits of v. */
static inline uint32_t weir_dec_len(uint64_t v) {
    if (v < 100000000u) {
        uint32_t w = (uint32_t)v;
        if (w < 10000) return w < 100 ? (w < 10 ? 1 : 2) : (w < 1000 ? 3 : 4);
        return w < 1000000 ? (w < 100000 ? 5 : 6) : (w < 10000000 ? 7 : 8);
    }
    uint32_t n = 9;
    for (uint64_t p = 1000000000u; n < 20 && v >= p; p *= 10) n++;
    return n;
}

/* Writes exactly len = weir_dec_len(v) decimal digits of v at dst, e.g. into
 * room made by weir_emit_reserve. */
static inline void weir_put_dec(uint8_t *dst, uint64_t v, uint32_t len) {
    if (v < 100000000u) {
        uint64_t d = weir__dec8((uint32_t)v) >> (8 * (8 - len));
        if (len >= 4) {
            uint32_t a = (uint32_t)d, b = (uint32_t)(d >> (8 * (len - 4)));
            memcpy(dst, &a, 4);
            memcpy(dst + len - 4, &b, 4);
        } else {
            dst[0] = (uint8_t)d;
            dst[len / 2] = (uint8_t)(d >> (8 * (len / 2)));
            dst[len - 1] = (uint8_t)(d >> (8 * (len - 1)));
        }
    } else {
        char tmp[20];
        weir_copy(dst, (const uint8_t *)tmp, weir_u64_to_dec(v, tmp));
    }
}

/* Writes v in decimal to buf (room for 21 bytes), returns the length. */
static inline uint32_t weir_i64_to_dec(int64_t v, char *buf) {
    if (v >= 0) return weir_u64_to_dec((uint64_t)v, buf);
    buf[0] = '-';
    return 1 + weir_u64_to_dec(0 - (uint64_t)v, buf + 1);
}

/* ----------------------------------------------------------------- output */

WEIR__NOINLINE static inline void weir__flush_buf(weir_emitter *e) {
    if (e->len) weir__host_output(e->buf, e->len);
    e->len = 0;
}

#define WEIR__LOW32 0xffffffffull

static inline const uint8_t *weir__run_end(const weir_emitter *e) {
    return (const uint8_t *)(uintptr_t)(uint32_t)e->tail;
}
static inline uint64_t weir__tail(uint64_t emitted_bits, const uint8_t *run_end) {
    return (emitted_bits & ~WEIR__LOW32) | (uint32_t)(uintptr_t)run_end;
}
static inline void weir__count(weir_emitter *e) { e->tail += 1ull << 32; }

/* The encoded entry of the callback's input record, and its end. */
static inline const uint8_t *weir__in_entry(const weir_emitter *e) { return e->in.key.ptr - 24; }
static inline const uint8_t *weir__in_end(const weir_emitter *e) { return e->in.headers.ptr + e->in.headers.len; }

/* Moves the pending pass-through run behind the buffered bytes: copied when
 * short, else both are handed to the host as they are. */
WEIR__NOINLINE static inline void weir__fold(weir_emitter *e) {
    if (e->in.key.ptr && weir__run_end(e) == weir__in_end(e)) weir__count(e); /* the run ends with the current record */
    uint32_t n = (uint32_t)(weir__run_end(e) - e->run);
    if (n <= 2048 && n <= e->cap - e->len) {
        memcpy(e->buf + e->len, e->run, n);
        e->len += n;
    } else {
        weir__flush_buf(e);
        weir__host_output(e->run, n);
    }
    e->run = NULL;
    e->tail = weir__tail(e->tail, NULL);
}

static inline void weir__flush(weir_emitter *e) {
    weir__flush_buf(e);
    if (weir__run_end(e)) weir__host_output(e->run, (uint32_t)(weir__run_end(e) - e->run));
    e->run = NULL;
    e->tail = 0;
}

/* Drops whatever the current call buffered. */
static inline void weir__discard(weir_emitter *e) {
    e->len = 0;
    e->run = NULL;
    e->tail = 0;
    e->in.key.ptr = NULL;
}

WEIR__NOINLINE static inline uint8_t *weir__reserve_slow(weir_emitter *e, uint64_t size) {
    if (size > (1u << 30)) {
        weir_error("output entry larger than 1 GiB");
        return NULL;
    }
    if (weir__run_end(e)) weir__fold(e);
    if (size > e->cap - e->len) weir__flush_buf(e);
    if (size > e->cap) {
        uint8_t *nb = (uint8_t *)malloc((size_t)size);
        if (!nb) {
            weir_error("out of memory for an output entry");
            return NULL;
        }
        if (e->buf != weir__g.outbuf) free(e->buf);
        e->buf = nb;
        e->cap = (uint32_t)size;
    }
    uint8_t *p = e->buf + e->len;
    e->len += (uint32_t)size;
    return p;
}

/* Room for one entry of size bytes at the end of the output buffer. */
static inline uint8_t *weir__reserve(weir_emitter *e, uint64_t size) {
    if (WEIR__LIKELY(!weir__run_end(e) && size <= e->cap - e->len)) {
        uint8_t *p = e->buf + e->len;
        e->len += (uint32_t)size;
        return p;
    }
    return weir__reserve_slow(e, size);
}

static inline void weir__put_header(uint8_t *p, uint8_t kind, uint8_t flags, uint16_t port, uint32_t kl,
                                    int64_t ts, uint32_t vl, uint32_t hl) {
    uint64_t h0 = kind | (uint64_t)flags << 8 | (uint64_t)port << 16 | (uint64_t)kl << 32;
    uint64_t h2 = vl | (uint64_t)hl << 32;
    memcpy(p, &h0, 8);
    memcpy(p + 8, &ts, 8);
    memcpy(p + 16, &h2, 8);
}

WEIR__NOINLINE static inline void weir__pass_start(weir_emitter *e) {
    if (weir__run_end(e)) weir__fold(e);
    e->run = weir__in_entry(e);
}

/* Emits the input record of this callback unchanged, without copying it:
 * it joins the run of input entries handed to the host as they are. */
__attribute__((always_inline)) static inline int weir__pass(weir_emitter *e) {
    uint64_t t = e->tail;
    if (WEIR__UNLIKELY((uint32_t)t != (uint32_t)(uintptr_t)weir__in_entry(e))) {
        weir__pass_start(e);
        t = e->tail;
    }
    e->tail = weir__tail(t, weir__in_end(e));
    return 0;
}

static inline int weir__same_record(const weir_record *a, const weir_record *b) {
    return a->key.ptr == b->key.ptr && a->key.len == b->key.len && a->value.ptr == b->value.ptr &&
           a->value.len == b->value.len && a->headers.ptr == b->headers.ptr &&
           a->headers.len == b->headers.len && a->timestamp == b->timestamp;
}

WEIR__NOINLINE static inline int weir__emit_copy(weir_emitter *out, uint16_t port, const weir_record *r) {
    if (port == 0 && out->in.key.ptr && weir__same_record(r, &out->in)) return weir__pass(out);
    uint32_t kl = r->key.len, vl = r->value.len, hl = r->headers.len;
    uint8_t *p = weir__reserve(out, 24 + (uint64_t)kl + vl + hl);
    if (WEIR__UNLIKELY(!p)) return WEIR_ERR;
    weir__put_header(p, WEIR_ENTRY_RECORD, 0, port, kl, r->timestamp, vl, hl);
    p = weir_copy(p + 24, r->key.ptr, kl);
    p = weir_copy(p, r->value.ptr, vl);
    weir_copy(p, r->headers.ptr, hl);
    weir__count(out);
    return 0;
}

/* Emits r to the main output: its bytes are copied, unless r is the
 * callback's input record unchanged, which is passed through. Returns 0, or
 * WEIR_ERR when out of memory. */
__attribute__((always_inline)) static inline int weir_emit(weir_emitter *out, const weir_record *r) {
    if (r == &out->in && out->in.key.ptr) return weir__pass(out);
    return weir__emit_copy(out, 0, r);
}

/* Emits r to output port: 0 is the main output, n the n-th name of the
 * operator's WEIR_SIDE_OUTPUTS. */
static inline int weir_emit_to(weir_emitter *out, uint16_t port, const weir_record *r) {
    if (port == 0) return weir_emit(out, r);
    return weir__emit_copy(out, port, r);
}

/* Emits a record to output port with room for its bytes and returns where
 * the key goes; the value follows at +key_len and the headers at
 * +key_len+value_len. Fill them before the next emit. NULL when out of
 * memory (the error is set). */
static inline uint8_t *weir_emit_reserve(weir_emitter *out, uint16_t port, int64_t timestamp,
                                         uint32_t key_len, uint32_t value_len, uint32_t headers_len) {
    uint8_t *p = weir__reserve(out, 24 + (uint64_t)key_len + value_len + headers_len);
    if (WEIR__UNLIKELY(!p)) return NULL;
    weir__put_header(p, WEIR_ENTRY_RECORD, 0, port, key_len, timestamp, value_len, headers_len);
    weir__count(out);
    return p + 24;
}

/* Emits to the main output a copy of in (key, timestamp, headers) with a new
 * value of value_len bytes, and returns where to write the value (before the
 * next emit). NULL when out of memory (the error is set). */
static inline uint8_t *weir_emit_value(weir_emitter *out, const weir_record *in, uint32_t value_len) {
    uint32_t kl = in->key.len, hl = in->headers.len;
    uint8_t *p = weir_emit_reserve(out, 0, in->timestamp, kl, value_len, hl);
    if (WEIR__UNLIKELY(!p)) return NULL;
    weir_copy(p, in->key.ptr, kl);
    weir_copy(p + kl + value_len, in->headers.ptr, hl);
    return p + kl;
}

/* Emits a watermark (process operators). */
static inline int weir_emit_watermark(weir_emitter *out, int64_t timestamp) {
    uint8_t *p = weir__reserve(out, 24);
    if (WEIR__UNLIKELY(!p)) return WEIR_ERR;
    weir__put_header(p, WEIR_ENTRY_WATERMARK, 0, 0, 0, timestamp, 0, 0);
    weir__count(out);
    return 0;
}

/* ------------------------------------------------------- about this batch */

/* The task's watermark when the batch was made (WEIR_NO_WATERMARK if none). */
static inline int64_t weir_watermark(void) { return weir__g.watermark; }
/* The host's processing time when the batch was made, ms since the epoch. */
static inline int64_t weir_processing_time(void) { return weir__g.processing_time; }
/* The key of the record or timer being processed (keyed state scope). */
static inline weir_bytes weir_current_key(void) { return weir__g.key; }

/* ---------------------------------------------------------------- scratch */

WEIR__NOINLINE static inline void *weir__scratch_slow(uint32_t n) {
    weir__globals *g = &weir__g;
    uint32_t cap = g->scr_cap ? g->scr_cap : 4096;
    while (cap < n + 8u) {
        if (cap > (1u << 30)) return NULL;
        cap *= 2;
    }
    uint8_t *blk = (uint8_t *)malloc(cap);
    if (!blk) return NULL;
    if (g->scr) { /* keep the old block alive until the end of the call */
        memcpy(g->scr, &g->scr_old, sizeof g->scr_old);
        g->scr_old = g->scr;
    }
    g->scr = blk;
    g->scr_cap = cap;
    g->scr_used = 8 + n; /* the first 8 bytes link outgrown blocks */
    return blk + 8;
}

/* n bytes (8-aligned) that stay valid until the end of the current call;
 * NULL when out of memory. */
static inline void *weir_scratch(uint32_t n) {
    weir__globals *g = &weir__g;
    if (n > (1u << 30)) return NULL;
    n = (n + 7u) & ~7u;
    if (g->scr && n <= g->scr_cap - g->scr_used) {
        void *p = g->scr + g->scr_used;
        g->scr_used += n;
        return p;
    }
    return weir__scratch_slow(n);
}

static inline void weir__scratch_reset(weir__globals *g) {
    while (g->scr_old) {
        void *next;
        memcpy(&next, g->scr_old, sizeof next);
        free(g->scr_old);
        g->scr_old = next;
    }
    g->scr_used = 8;
}

/* ----------------------------------------------------------- logs, metrics */

static inline void weir_log_bytes(int level, const void *msg, uint32_t len) { weir__host_log(level, msg, len); }
static inline void weir_log(int level, const char *msg) { weir__host_log(level, msg, (uint32_t)strlen(msg)); }
static inline void weir__send_counters(void) {
    weir__globals *g = &weir__g;
    for (uint32_t i = 0; i < g->ncounters; i++)
        if (g->counters[i].delta) weir__host_counter(g->counters[i].name, g->counters[i].len, g->counters[i].delta);
}

/* Adds delta to the named counter of the task (names: at most 128 bytes).
 * Deltas are summed during the call and sent to the host once per name at
 * its end, and dropped if the call fails. */
static inline void weir_counter(const char *name, int64_t delta) {
    weir__globals *g = &weir__g;
    g->send_counters = weir__send_counters;
    uint32_t len = (uint32_t)strlen(name);
    for (uint32_t i = 0; i < g->ncounters; i++) {
        weir__counter *c = &g->counters[i];
        if (c->len == len && memcmp(c->name, name, len) == 0) {
            c->delta += delta;
            return;
        }
    }
    if (g->ncounters == WEIR_COUNTERS || len > sizeof g->counters[0].name || len == 0) {
        weir__host_counter(name, len, delta); /* no room to sum it, or a name the host will refuse */
        return;
    }
    weir__counter *c = &g->counters[g->ncounters++];
    c->len = len;
    memcpy(c->name, name, len);
    c->delta = delta;
}

/* Sends (or drops) the counters summed during the call. */
static inline void weir__counters_end(weir__globals *g, int send) {
    if (send && g->ncounters && g->send_counters) g->send_counters();
    g->ncounters = 0;
}

/* ------------------------------------------------------------ keyed state */

/* Declares a state of kind WEIR_STATE_VALUE, _LIST or _MAP; only in open. */
static inline weir_state weir_state_register(const char *name, int kind) {
    return weir__host_state_register(name, (uint32_t)strlen(name), kind);
}

/* The raw state host function, scoped to the current key. */
static inline int64_t weir_state_op(int op, weir_state st, const void *ukey, uint32_t ukey_len, void *v,
                                    uint32_t vlen) {
    weir__globals *g = &weir__g;
    return weir__host_state(op, st, g->key.ptr, g->key.len, ukey, ukey_len, v, vlen);
}

/* Reads with op into scratch memory: 1 found, 0 nothing, WEIR_ERR. */
static inline int weir__state_load(int op, weir_state st, const void *u, uint32_t ul, weir_bytes *out) {
    uint32_t cap = 256;
    for (;;) {
        uint8_t *buf = (uint8_t *)weir_scratch(cap);
        if (!buf) return weir_error("out of memory reading state");
        int64_t n = weir_state_op(op, st, u, ul, buf, cap);
        if (n < 0) {
            out->ptr = NULL;
            out->len = 0;
            return 0;
        }
        if (n <= cap) {
            out->ptr = buf;
            out->len = (uint32_t)n;
            return 1;
        }
        if (n > (1 << 30)) return weir_error("state value larger than 1 GiB");
        cap = (uint32_t)n;
    }
}

/* Value state. get writes at most cap bytes and returns the full length, or
 * -1 when there is no value; load reads into scratch memory (1 found, 0 not). */
static inline int64_t weir_value_get(weir_state st, void *buf, uint32_t cap) {
    return weir_state_op(WEIR_STATE_GET, st, NULL, 0, buf, cap);
}
static inline int weir_value_load(weir_state st, weir_bytes *v) {
    return weir__state_load(WEIR_STATE_GET, st, NULL, 0, v);
}
static inline void weir_value_put(weir_state st, const void *v, uint32_t len) {
    weir_state_op(WEIR_STATE_PUT, st, NULL, 0, (void *)v, len);
}
static inline void weir_value_clear(weir_state st) { weir_state_op(WEIR_STATE_CLEAR, st, NULL, 0, NULL, 0); }

/* List state: items come back as (u32 length, bytes)*; walk them with
 * weir_next_item. */
static inline void weir_list_append(weir_state st, const void *v, uint32_t len) {
    weir_state_op(WEIR_STATE_PUT, st, NULL, 0, (void *)v, len);
}
static inline int64_t weir_list_get(weir_state st, void *buf, uint32_t cap) {
    return weir_state_op(WEIR_STATE_GET, st, NULL, 0, buf, cap);
}
static inline int weir_list_load(weir_state st, weir_bytes *items) {
    return weir__state_load(WEIR_STATE_GET, st, NULL, 0, items);
}
static inline void weir_list_clear(weir_state st) { weir_state_op(WEIR_STATE_CLEAR, st, NULL, 0, NULL, 0); }

/* Map state (user key -> value) within the current key. Entries come back as
 * (u32 key length, key, u32 value length, value)*; walk with weir_next_entry. */
static inline int64_t weir_map_get(weir_state st, const void *ukey, uint32_t ukey_len, void *buf, uint32_t cap) {
    return weir_state_op(WEIR_STATE_GET, st, ukey, ukey_len, buf, cap);
}
static inline int weir_map_load(weir_state st, const void *ukey, uint32_t ukey_len, weir_bytes *v) {
    return weir__state_load(WEIR_STATE_GET, st, ukey, ukey_len, v);
}
static inline void weir_map_put(weir_state st, const void *ukey, uint32_t ukey_len, const void *v, uint32_t len) {
    weir_state_op(WEIR_STATE_PUT, st, ukey, ukey_len, (void *)v, len);
}
static inline void weir_map_delete(weir_state st, const void *ukey, uint32_t ukey_len) {
    weir_state_op(WEIR_STATE_DELETE, st, ukey, ukey_len, NULL, 0);
}
static inline int weir_map_entries(weir_state st, weir_bytes *entries) {
    return weir__state_load(WEIR_STATE_ENTRIES, st, NULL, 0, entries);
}
static inline void weir_map_clear(weir_state st) { weir_state_op(WEIR_STATE_CLEAR, st, NULL, 0, NULL, 0); }

/* Takes the first length-prefixed item off *rest: 1 got one, 0 at the end,
 * WEIR_ERR malformed. */
static inline int weir_next_item(weir_bytes *rest, weir_bytes *item) {
    if (rest->len == 0) return 0;
    if (rest->len < 4) return WEIR_ERR;
    uint32_t n = weir__rd32(rest->ptr);
    if (n > rest->len - 4) return WEIR_ERR;
    item->ptr = rest->ptr + 4;
    item->len = n;
    rest->ptr += 4 + n;
    rest->len -= 4 + n;
    return 1;
}

/* Takes the first map entry off *rest (as weir_next_item). */
static inline int weir_next_entry(weir_bytes *rest, weir_bytes *key, weir_bytes *value) {
    int r = weir_next_item(rest, key);
    if (r != 1) return r;
    return weir_next_item(rest, value) == 1 ? 1 : WEIR_ERR;
}

/* Takes the first header off *rest (a record's headers): 1, 0 at the end,
 * WEIR_ERR malformed. */
static inline int weir_next_header(weir_bytes *rest, weir_bytes *name, weir_bytes *value) {
    if (rest->len == 0) return 0;
    if (rest->len < 2) return WEIR_ERR;
    uint32_t nl = weir__rd16(rest->ptr);
    if (rest->len - 2 < nl + 4u) return WEIR_ERR;
    uint32_t vl = weir__rd32(rest->ptr + 2 + nl);
    if (vl > rest->len - 6 - nl) return WEIR_ERR;
    name->ptr = rest->ptr + 2;
    name->len = nl;
    value->ptr = rest->ptr + 6 + nl;
    value->len = vl;
    rest->ptr += 6 + nl + vl;
    rest->len -= 6 + nl + vl;
    return 1;
}

/* Finds the first header called name: 1 found (value set), 0 not. */
static inline int weir_header_get(const weir_record *r, const char *name, weir_bytes *value) {
    weir_bytes rest = r->headers, n;
    size_t want = strlen(name);
    while (weir_next_header(&rest, &n, value) == 1)
        if (n.len == want && memcmp(n.ptr, name, want) == 0) return 1;
    return 0;
}

/* Encodes one header at dst (6 + name_len + value_len bytes); returns its size. */
static inline uint32_t weir_header_put(uint8_t *dst, const char *name, uint16_t name_len, const void *value,
                                       uint32_t value_len) {
    memcpy(dst, &name_len, 2);
    weir_copy(dst + 2, (const uint8_t *)name, name_len);
    memcpy(dst + 2 + name_len, &value_len, 4);
    weir_copy(dst + 6 + name_len, (const uint8_t *)value, value_len);
    return 6u + name_len + value_len;
}

/* ----------------------------------------------------------------- timers */

/* Registers (or deletes) a timer for the current key at ts in domain. */
static inline void weir_timer_register(int domain, int64_t ts) {
    weir__host_timer(1, domain, ts, weir__g.key.ptr, weir__g.key.len);
}
static inline void weir_timer_delete(int domain, int64_t ts) {
    weir__host_timer(2, domain, ts, weir__g.key.ptr, weir__g.key.len);
}

/* ------------------------------------------------- the exports' internals */

/* A message under construction, cut at its capacity. */
typedef struct weir__msg {
    char b[WEIR_ERROR_MAX + 160];
    uint32_t n;
} weir__msg;

static inline void weir__msg_add(weir__msg *m, const void *s, uint32_t len) {
    if (len > sizeof m->b - m->n) len = (uint32_t)(sizeof m->b - m->n);
    memcpy(m->b + m->n, s, len);
    m->n += len;
}
static inline void weir__msg_str(weir__msg *m, const char *s) { weir__msg_add(m, s, (uint32_t)strlen(s)); }
static inline void weir__msg_u64(weir__msg *m, uint64_t v) {
    char d[20];
    weir__msg_add(m, d, weir_u64_to_dec(v, d));
}

/* Fails the call: "<what>[ <index>]: <problem or the operator's message>". */
WEIR__NOINLINE static inline int32_t weir__fail(const weir_operator *o, const char *what, int64_t index,
                                                const char *problem, int rc) {
    weir__globals *g = &weir__g;
    weir__msg m;
    m.n = 0;
    weir__msg_str(&m, what);
    if (index >= 0) {
        weir__msg_str(&m, " ");
        weir__msg_u64(&m, (uint64_t)index);
    }
    weir__msg_str(&m, ": ");
    if (problem) {
        weir__msg_str(&m, problem);
    } else if (g->err_set) {
        weir__msg_add(&m, g->err, g->err_len);
    } else {
        weir__msg_str(&m, "operator ");
        weir__msg_str(&m, o ? o->name : "?");
        weir__msg_str(&m, " returned ");
        char d[21];
        weir__msg_add(&m, d, weir_i64_to_dec(rc, d));
        weir__msg_str(&m, " without calling weir_error");
    }
    weir__host_fail(m.b, m.n);
    weir__discard(&g->out);
    weir__counters_end(g, 0);
    g->key.ptr = NULL;
    g->key.len = 0;
    return 1;
}

static inline void weir__init(void) {
    weir__globals *g = &weir__g;
    if (g->inited) return;
    g->inited = 1;
    g->out.buf = g->outbuf;
    g->out.cap = WEIR_OUTPUT_FLUSH;
    g->watermark = WEIR_NO_WATERMARK;
    extern void __wasm_call_ctors(void);
    __wasm_call_ctors();
}

/* weir_buffer has no way to report failure (0 is an address), so running
 * out of memory here traps: the host sees the instance fail. */
static inline int32_t weir__buffer(uint32_t size) {
    weir__globals *g = &weir__g;
    if (size > g->in_cap || !g->in) {
        free(g->in);
        g->in_cap = size < 64 ? 64 : size;
        g->in = (uint8_t *)malloc(g->in_cap);
        if (!g->in) __builtin_trap();
    }
    return (int32_t)(uintptr_t)g->in;
}

static inline const char *weir__kind_name(int kind) {
    switch (kind) {
    case WEIR_KIND_MAP: return "map";
    case WEIR_KIND_FILTER: return "filter";
    case WEIR_KIND_FLAT_MAP: return "flat_map";
    case WEIR_KIND_PROCESS: return "process";
    }
    return "unknown";
}

/* Appends s as a JSON string. */
static inline void weir__msg_json(weir__msg *m, const char *s) {
    static const char hex[] = "0123456789abcdef";
    weir__msg_add(m, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            weir__msg_add(m, esc, 2);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            weir__msg_add(m, esc, 6);
        } else {
            weir__msg_add(m, &c, 1);
        }
    }
    weir__msg_add(m, "\"", 1);
}

/* Writes the descriptor, one operator at a time into a small buffer. */
static inline void weir__describe(const weir_operator *ops, uint32_t n) {
    weir__globals *g = &weir__g;
    weir_emitter *e = &g->out;
    weir__msg m;
    weir__discard(e);
    for (uint32_t i = 0; i <= n; i++) {
        m.n = 0;
        if (i == 0) weir__msg_str(&m, "{\"sdk\":\"" WEIR_SDK_NAME "\",\"operators\":[");
        if (i == n) {
            weir__msg_str(&m, "]}");
        } else {
            if (i > 0) weir__msg_str(&m, ",");
            weir__msg_str(&m, "{\"name\":");
            weir__msg_json(&m, ops[i].name ? ops[i].name : "");
            weir__msg_str(&m, ",\"kind\":\"");
            weir__msg_str(&m, weir__kind_name(ops[i].kind));
            weir__msg_str(&m, "\"");
            if (ops[i].side_outputs && ops[i].side_outputs[0]) {
                weir__msg_str(&m, ",\"side_outputs\":[");
                for (const char *const *s = ops[i].side_outputs; *s; s++) {
                    if (s != ops[i].side_outputs) weir__msg_str(&m, ",");
                    weir__msg_json(&m, *s);
                }
                weir__msg_str(&m, "]");
            }
            weir__msg_str(&m, "}");
        }
        if (m.n > e->cap - e->len) weir__flush_buf(e);
        memcpy(e->buf + e->len, m.b, m.n);
        e->len += m.n;
    }
    weir__flush_buf(e);
}

/* Runs the records of a batch through operator o. */
__attribute__((always_inline)) static inline int32_t weir__run_records(const weir_operator *o, const uint8_t *p,
                                                                      const uint8_t *end, uint32_t count) {
    weir__globals *g = &weir__g;
    weir_emitter *e = &g->out;
    const int kind = o->kind;
    const weir_record_fn fn = o->on_record;
    const weir_filter_fn filter = o->filter;
    weir_record *rec = &e->in;
    if (kind == WEIR_KIND_FILTER ? !filter : !fn) return weir__fail(o, "operator", -1, "no callback in the operator table", 0);
    for (uint32_t i = 0; i < count; i++) {
        if (WEIR__UNLIKELY((size_t)(end - p) < 24)) return weir__fail(o, "record", i, "truncated entry", 0);
        uint64_t h0 = (uint64_t)weir__rd64(p), h2 = (uint64_t)weir__rd64(p + 16);
        uint32_t kl = (uint32_t)(h0 >> 32), vl = (uint32_t)h2, hl = (uint32_t)(h2 >> 32);
        uint64_t payload = (uint64_t)kl + vl + hl;
        if (WEIR__UNLIKELY(payload > (size_t)(end - p) - 24)) return weir__fail(o, "record", i, "truncated entry", 0);
        if (WEIR__UNLIKELY((uint32_t)h0 != WEIR_ENTRY_RECORD)) {
            if ((uint8_t)h0 != WEIR_ENTRY_RECORD) return weir__fail(o, "record", i, "not a record entry", 0);
            /* Flags or input port set: clear them in the input buffer (the
             * SDK's), so that the entry reads as the output entry of an
             * unchanged record and can be passed through. */
            memset((uint8_t *)p + 1, 0, 3);
        }
        const uint8_t *next = p + 24 + payload;
        /* Few, wide stores: every store costs in WebAssembly engines. */
        weir__set2(&rec->key, p + 24, kl);
        weir__set2(&rec->value, p + 24 + kl, vl);
        weir__set2(&rec->headers, p + 24 + kl + vl, hl);
        rec->timestamp = weir__rd64(p + 8);
        int rc;
        if (kind == WEIR_KIND_FILTER) {
            rc = filter(rec);
            if (rc > 0) {
                weir__pass(e);
            } else if (WEIR__UNLIKELY(rc < 0)) {
                return weir__fail(o, "record", i, NULL, rc);
            }
        } else {
            if (kind == WEIR_KIND_PROCESS) g->key = rec->key;
            rc = fn(rec, e);
            if (WEIR__UNLIKELY(rc != 0)) return weir__fail(o, "record", i, NULL, rc);
            if (kind == WEIR_KIND_MAP) {
                uint64_t t = e->tail;
                uint32_t n = (uint32_t)(t >> 32) + ((uint32_t)t == (uint32_t)(uintptr_t)next);
                if (WEIR__UNLIKELY(n != 1)) {
                    const char *why = n ? "a map operator emitted more than one record (use WEIR_FLAT_MAP)"
                                        : "a map operator emitted no record (use WEIR_FLAT_MAP or WEIR_FILTER)";
                    return weir__fail(o, "record", i, g->err_set ? NULL : why, 0);
                }
            }
            if (e->tail >> 32) e->tail &= WEIR__LOW32;
        }
        p = next;
    }
    rec->key.ptr = NULL;
    if (p != end) return weir__fail(o, "batch", -1, "bytes left after the last entry of the count", 0);
    return 0;
}

/* Runs the due timers of a batch through process operator o. */
static inline int32_t weir__run_timers(const weir_operator *o, const uint8_t *p, const uint8_t *end,
                                       uint32_t count) {
    weir__globals *g = &weir__g;
    weir_emitter *e = &g->out;
    if (!o->on_timer) return weir__fail(o, "timer", 0, "timers are due but the operator has no .on_timer", 0);
    weir_timer t;
    for (uint32_t i = 0; i < count; i++) {
        if ((size_t)(end - p) < 24) return weir__fail(o, "timer", i, "truncated entry", 0);
        uint32_t kl = weir__rd32(p + 4);
        uint64_t payload = (uint64_t)kl + weir__rd32(p + 16) + weir__rd32(p + 20);
        if (payload > (size_t)(end - p) - 24) return weir__fail(o, "timer", i, "truncated entry", 0);
        if (p[0] != WEIR_ENTRY_TIMER) return weir__fail(o, "timer", i, "not a timer entry", 0);
        t.key.ptr = p + 24;
        t.key.len = kl;
        t.timestamp = weir__rd64(p + 8);
        t.domain = p[1];
        g->key = t.key;
        int rc = o->on_timer(&t, e);
        if (rc != 0) return weir__fail(o, "timer", i, NULL, rc);
        p += 24 + payload;
    }
    if (p != end) return weir__fail(o, "batch", -1, "bytes left after the last entry of the count", 0);
    return 0;
}

/* Starts a call: resets the per-call state and checks the arguments. */
static inline int32_t weir__begin(uint32_t op, uint32_t nops, uint32_t len) {
    weir__globals *g = &weir__g;
    if (WEIR__UNLIKELY(!g->inited)) weir__init();
    weir__discard(&g->out);
    g->err_set = 0;
    g->err_len = 0;
    g->ncounters = 0;
    if (g->scr_old || g->scr_used > 8) weir__scratch_reset(g);
    if (op >= nops) return weir__fail(NULL, "call", -1, "no operator with this index in the descriptor", 0);
    if (len > g->in_cap) return weir__fail(NULL, "call", -1, "input longer than the buffer from weir_buffer", 0);
    return 0;
}

/* Runs method of operator o over the len input bytes. Inlined once per
 * operator of the table (see WEIR_OPERATORS), so that its callbacks are
 * direct calls the compiler may inline into the record loop. */
__attribute__((always_inline)) static inline int32_t weir__call_op(const weir_operator *o, uint32_t method,
                                                                   uint32_t len) {
    weir__globals *g = &weir__g;
    weir_emitter *e = &g->out;
    const uint8_t *p = g->in, *end = g->in + len;
    int32_t rc = 0;
    if (method == WEIR_METHOD_OPEN) {
        g->watermark = WEIR_NO_WATERMARK;
        g->processing_time = 0;
        g->key.ptr = NULL;
        g->key.len = 0;
        if (o->open) {
            weir_bytes params = {p, len};
            int r = o->open(params);
            if (r != 0) return weir__fail(o, "open", -1, NULL, r);
        }
        weir__flush(e);
        if (g->ncounters) weir__counters_end(g, 1);
        return 0;
    }
    if (len < 24) return weir__fail(o, "batch", -1, "shorter than its 24-byte header", 0);
    uint32_t count = weir__rd32(p);
    g->watermark = weir__rd64(p + 8);
    g->processing_time = weir__rd64(p + 16);
    p += 24;
    switch (method) {
    case WEIR_METHOD_PROCESS:
        rc = weir__run_records(o, p, end, count);
        break;
    case WEIR_METHOD_TIMERS:
        if (o->kind != WEIR_KIND_PROCESS) return weir__fail(o, "call", -1, "timers go to process operators only", 0);
        rc = weir__run_timers(o, p, end, count);
        break;
    case WEIR_METHOD_FINISH:
        g->key.ptr = NULL;
        g->key.len = 0;
        if (o->finish) {
            int r = o->finish(e);
            if (r != 0) return weir__fail(o, "finish", -1, NULL, r);
        }
        break;
    default:
        return weir__fail(o, "call", -1, "method not supported by this operator (the C SDK has no aggregate operators)", 0);
    }
    if (rc != 0) return rc;
    weir__flush(e);
    if (g->ncounters) weir__counters_end(g, 1);
    g->key.ptr = NULL;
    g->key.len = 0;
    return 0;
}

/* One case of weir_call's dispatch: operator K with constant callbacks. */
#define WEIR__CASE(K)                                                                \
    case K:                                                                          \
        if ((K) < weir__nops)                                                        \
            return weir__call_op(&weir__ops[(K) < weir__nops ? (K) : 0], (uint32_t)method, (uint32_t)len); \
        break;

/* Defines the operator table and the module's exports. Expand it in exactly
 * one .c file of the module, at file scope (a trailing ';' is optional). */
#define WEIR_OPERATORS(...)                                                                              \
    static const weir_operator weir__ops[] = {__VA_ARGS__};                                              \
    weir__globals weir__g;                                                                               \
    __attribute__((export_name("_initialize"))) void weir__initialize(void) { weir__init(); }           \
    __attribute__((export_name("weir_abi_version"))) int32_t weir_abi_version(void) {                   \
        weir__init();                                                                                    \
        return WEIR_ABI_VERSION;                                                                         \
    }                                                                                                    \
    __attribute__((export_name("weir_describe"))) void weir_describe(void) {                            \
        weir__init();                                                                                    \
        weir__describe(weir__ops, (uint32_t)(sizeof weir__ops / sizeof weir__ops[0]));                   \
    }                                                                                                    \
    __attribute__((export_name("weir_buffer"))) int32_t weir_buffer(int32_t size) {                     \
        weir__init();                                                                                    \
        return weir__buffer((uint32_t)size);                                                             \
    }                                                                                                    \
    __attribute__((export_name("weir_call"))) int32_t weir_call(int32_t op, int32_t method, int32_t len) { \
        enum { weir__nops = sizeof weir__ops / sizeof weir__ops[0] };                                   \
        if (weir__begin((uint32_t)op, weir__nops, (uint32_t)len)) return 1;                              \
        switch (op) {                                                                                    \
            WEIR__CASE(0) WEIR__CASE(1) WEIR__CASE(2) WEIR__CASE(3)                                      \
            WEIR__CASE(4) WEIR__CASE(5) WEIR__CASE(6) WEIR__CASE(7)                                      \
            WEIR__CASE(8) WEIR__CASE(9) WEIR__CASE(10) WEIR__CASE(11)                                    \
            WEIR__CASE(12) WEIR__CASE(13) WEIR__CASE(14) WEIR__CASE(15)                                  \
        }                                                                                                \
        if (weir__nops <= 16) return 1; /* unreachable: weir__begin checked op */                       \
        return weir__call_op(&weir__ops[op], (uint32_t)method, (uint32_t)len);                          \
    }

#endif /* WEIR_H */
