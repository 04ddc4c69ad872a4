/*
 * Example operators for the weir C SDK (docs/sdk-c.md):
 *
 *   upper     map       ASCII-uppercases the value
 *   nonempty  filter    drops records whose value is empty
 *   words     flat_map  splits the value on spaces, one record per word
 *   count     process   counts records per key in value state; emits the
 *                       running count, and when the key's event-time timer
 *                       (first record + 60 s) fires, emits the final count on
 *                       side output "expired" and forgets the key
 *
 * Build: weir module build examples/c-upper
 */
#include "weir.h"

static int upper(const weir_record *in, weir_emitter *out) {
    uint32_t n = in->value.len;
    uint8_t *v = weir_emit_value(out, in, n);
    if (!v) return WEIR_ERR;
    const uint8_t *s = in->value.ptr;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        v[i] = (uint8_t)(c - 'a') < 26 ? c - ('a' - 'A') : c;
    }
    return 0;
}

static int nonempty(const weir_record *in) { return in->value.len > 0; }

static int words(const weir_record *in, weir_emitter *out) {
    weir_record w = *in;
    const uint8_t *s = in->value.ptr, *end = s + in->value.len;
    while (s < end) {
        while (s < end && *s == ' ') s++;
        const uint8_t *start = s;
        while (s < end && *s != ' ') s++;
        if (s > start) {
            w.value.ptr = start;
            w.value.len = (uint32_t)(s - start);
            if (weir_emit(out, &w) != 0) return WEIR_ERR;
        }
    }
    return 0;
}

#define COUNT_WINDOW_MS 60000

static weir_state count_state;

static int count_open(weir_bytes params) {
    (void)params;
    count_state = weir_state_register("count", WEIR_STATE_VALUE);
    return 0;
}

/* The count of the current key, 0 if none; -1 on corrupt state. */
static int64_t count_get(void) {
    uint64_t n;
    int64_t got = weir_value_get(count_state, &n, sizeof n);
    if (got < 0) return 0;
    if (got != sizeof n) return -1;
    return (int64_t)n;
}

static int count(const weir_record *in, weir_emitter *out) {
    int64_t n = count_get();
    if (n < 0) return weir_error("count state is not 8 bytes");
    if (n == 0) weir_timer_register(WEIR_EVENT_TIME, in->timestamp + COUNT_WINDOW_MS);
    uint64_t next = (uint64_t)n + 1;
    weir_value_put(count_state, &next, sizeof next);
    weir_counter("records_counted", 1);

    char digits[20];
    weir_record r = *in;
    r.value.ptr = (const uint8_t *)digits;
    r.value.len = weir_u64_to_dec(next, digits);
    r.headers.len = 0;
    return weir_emit(out, &r);
}

static int count_expired(const weir_timer *t, weir_emitter *out) {
    int64_t n = count_get();
    if (n < 0) return weir_error("count state is not 8 bytes");
    weir_value_clear(count_state);
    char digits[20];
    weir_record r = {0};
    r.key = t->key;
    r.value.ptr = (const uint8_t *)digits;
    r.value.len = weir_u64_to_dec((uint64_t)n, digits);
    r.timestamp = t->timestamp;
    return weir_emit_to(out, 1, &r); /* side output 1: "expired" */
}

WEIR_OPERATORS(
    WEIR_MAP("upper", upper),
    WEIR_FILTER("nonempty", nonempty),
    WEIR_FLAT_MAP("words", words),
    WEIR_PROCESS("count", count, .on_timer = count_expired, .open = count_open,
                 WEIR_SIDE_OUTPUTS("expired")))
