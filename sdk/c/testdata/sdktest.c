/* Operators that exercise the corners of weir.h, for c_test.go. */
#include "weir.h"

/* value: 8 bytes, a little-endian u64. key: its i64 reading in decimal,
 * value: its u64 reading, both checked against weir_dec_len/weir_put_dec. */
static int udec(const weir_record *in, weir_emitter *out) {
    uint64_t v;
    if (in->value.len != 8) return weir_error("want 8 bytes");
    memcpy(&v, in->value.ptr, 8);
    char u[20], s[21], p[20];
    uint32_t un = weir_u64_to_dec(v, u), sn = weir_i64_to_dec((int64_t)v, s);
    if (weir_dec_len(v) != un) return weir_error("weir_dec_len disagrees with weir_u64_to_dec");
    weir_put_dec((uint8_t *)p, v, un);
    if (memcmp(p, u, un) != 0) return weir_error("weir_put_dec disagrees with weir_u64_to_dec");
    weir_record r = {.key = {(const uint8_t *)s, sn}, .value = {(const uint8_t *)u, un}, .timestamp = in->timestamp};
    return weir_emit(out, &r);
}

static int twice(const weir_record *in, weir_emitter *out) {
    weir_emit(out, in);
    return weir_emit(out, in);
}

static int none(const weir_record *in, weir_emitter *out) {
    (void)in;
    (void)out;
    return 0;
}

static int silent(const weir_record *in, weir_emitter *out) {
    (void)in;
    (void)out;
    return 7;
}

/* in, in, a copy with value "x", in, then in to side output 1. */
static int dup(const weir_record *in, weir_emitter *out) {
    weir_record x = *in;
    x.value.ptr = (const uint8_t *)"x";
    x.value.len = 1;
    if (weir_emit(out, in) || weir_emit(out, in) || weir_emit(out, &x)) return WEIR_ERR;
    weir_record same = *in; /* a copy of the input, unchanged: passed through too */
    if (weir_emit(out, &same)) return WEIR_ERR;
    return weir_emit_to(out, 1, in);
}

/* value: the value of header "want", or "-"; key: the number of headers. */
static int hdr(const weir_record *in, weir_emitter *out) {
    weir_bytes v = {(const uint8_t *)"-", 1}, rest = in->headers, name, val;
    uint32_t n = 0;
    int r;
    while ((r = weir_next_header(&rest, &name, &val)) == 1) n++;
    if (r < 0) return weir_error("malformed headers");
    weir_header_get(in, "want", &v);
    char nd[20];
    weir_record o = {.key = {(const uint8_t *)nd, weir_u64_to_dec(n, nd)}, .value = v, .timestamp = in->timestamp};
    return weir_emit(out, &o);
}

/* Scratch memory across arena growth: emits a 100-byte and a 20000-byte
 * chunk, filled before and after the arena grows. */
static int scratch(const weir_record *in, weir_emitter *out) {
    uint8_t *a = weir_scratch(100), *b = weir_scratch(5000), *c = weir_scratch(20000);
    if (!a || !b || !c) return weir_error("scratch failed");
    memset(a, 'a', 100);
    memset(b, 'b', 5000);
    memset(c, 'c', 20000);
    weir_record r = *in;
    r.value.ptr = a;
    r.value.len = 100;
    if (weir_emit(out, &r)) return WEIR_ERR;
    r.value.ptr = c;
    r.value.len = 20000;
    return weir_emit(out, &r);
}

/* key "k", value: the input value reversed, headers: h=v. */
static int reserve(const weir_record *in, weir_emitter *out) {
    uint32_t n = in->value.len;
    uint8_t *p = weir_emit_reserve(out, 0, in->timestamp, 1, n, 6 + 1 + 1);
    if (!p) return WEIR_ERR;
    p[0] = 'k';
    for (uint32_t i = 0; i < n; i++) p[1 + i] = in->value.ptr[n - 1 - i];
    weir_header_put(p + 1 + n, "h", 1, "v", 1);
    return 0;
}

/* Keeps values by their length; "bad" fails. */
static int failneg(const weir_record *in) {
    if (in->value.len == 3 && memcmp(in->value.ptr, "bad", 3) == 0) return weir_error("bad value");
    return (int)in->value.len;
}

static char params[64];
static uint32_t params_len;

static int meta_open(weir_bytes p) {
    if (p.len > sizeof params) return weir_error("params too long");
    memcpy(params, p.ptr, p.len);
    params_len = p.len;
    return 0;
}

/* A watermark at the record's time, then "wm=<watermark> pt=<time>"; counts
 * 2 per record in meta_records; value "fail" fails (after counting). */
static int meta(const weir_record *in, weir_emitter *out) {
    weir_log(WEIR_LOG_INFO, "meta called");
    weir_counter("meta_records", 2);
    if (in->value.len == 4 && memcmp(in->value.ptr, "fail", 4) == 0) return weir_error("asked to fail");
    if (weir_emit_watermark(out, in->timestamp)) return WEIR_ERR;
    char buf[64];
    uint32_t n = 0;
    memcpy(buf, "wm=", 3);
    n = 3;
    n += weir_i64_to_dec(weir_watermark(), buf + n);
    memcpy(buf + n, " pt=", 4);
    n += 4;
    n += weir_i64_to_dec(weir_processing_time(), buf + n);
    uint8_t *v = weir_emit_value(out, in, n);
    if (!v) return WEIR_ERR;
    memcpy(v, buf, n);
    return 0;
}

/* "done:" + the open parameters. */
static int meta_finish(weir_emitter *out) {
    uint8_t *p = weir_emit_reserve(out, 0, 0, 0, 5 + params_len, 0);
    if (!p) return WEIR_ERR;
    memcpy(p, "done:", 5);
    memcpy(p + 5, params, params_len);
    return 0;
}

static weir_state st_last, st_items, st_seen;

static int states_open(weir_bytes p) {
    (void)p;
    st_last = weir_state_register("last", WEIR_STATE_VALUE);
    st_items = weir_state_register("items", WEIR_STATE_LIST);
    st_seen = weir_state_register("seen", WEIR_STATE_MAP);
    return 0;
}

/* "prev=<last value> items=<n>:<total bytes> seen=<n>"; value "clear"
 * clears the key's list and map state, "forget" deletes the map entry of
 * "a". */
static int states(const weir_record *in, weir_emitter *out) {
    weir_bytes prev = {(const uint8_t *)"", 0}, items, ents, k, v;
    if (weir_value_load(st_last, &prev) < 0) return WEIR_ERR;
    weir_value_put(st_last, in->value.ptr, in->value.len);
    if (in->value.len == 5 && memcmp(in->value.ptr, "clear", 5) == 0) {
        weir_list_clear(st_items);
        weir_map_clear(st_seen);
    } else if (in->value.len == 6 && memcmp(in->value.ptr, "forget", 6) == 0) {
        weir_map_delete(st_seen, "a", 1);
    } else {
        weir_list_append(st_items, in->value.ptr, in->value.len);
        weir_map_put(st_seen, in->value.ptr, in->value.len, "1", 1);
    }
    uint64_t nitems = 0, total = 0, nseen = 0;
    if (weir_list_load(st_items, &items) < 0 || weir_map_entries(st_seen, &ents) < 0) return WEIR_ERR;
    int r;
    while ((r = weir_next_item(&items, &v)) == 1) {
        nitems++;
        total += v.len;
    }
    if (r < 0) return weir_error("malformed list");
    while ((r = weir_next_entry(&ents, &k, &v)) == 1) nseen++;
    if (r < 0) return weir_error("malformed map entries");
    uint8_t small[4];
    if (weir_map_get(st_seen, in->value.ptr, in->value.len, small, sizeof small) == 1 && small[0] != '1')
        return weir_error("map_get");

    uint32_t pl = prev.len > 32 ? 32 : prev.len;
    char buf[128];
    uint32_t n = 0;
    memcpy(buf + n, "prev=", 5), n += 5;
    memcpy(buf + n, prev.ptr, pl), n += pl;
    memcpy(buf + n, " items=", 7), n += 7;
    n += weir_u64_to_dec(nitems, buf + n);
    buf[n++] = ':';
    n += weir_u64_to_dec(total, buf + n);
    memcpy(buf + n, " seen=", 6), n += 6;
    n += weir_u64_to_dec(nseen, buf + n);
    weir_record o = *in;
    o.value.ptr = (const uint8_t *)buf;
    o.value.len = n;
    return weir_emit(out, &o);
}

WEIR_OPERATORS(
    WEIR_MAP("udec", udec),
    WEIR_MAP("twice", twice),
    WEIR_MAP("none", none),
    WEIR_MAP("silent", silent),
    WEIR_FLAT_MAP("dup", dup, WEIR_SIDE_OUTPUTS("side")),
    WEIR_MAP("hdr", hdr),
    WEIR_FLAT_MAP("scratch", scratch),
    WEIR_MAP("reserve", reserve),
    WEIR_FILTER("failneg", failneg),
    WEIR_FLAT_MAP("meta", meta, .open = meta_open, .finish = meta_finish),
    WEIR_PROCESS("states", states, .open = states_open))
