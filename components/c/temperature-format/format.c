/* c/Format: the temperature formatter, in C. Same outputs as temperature/Format (Rust):
 * one decimal, rounded half away from zero, never "-0.0". No heap beyond what the
 * bindings need, no WASI: it runs on the edge host too. */
#include <math.h>
#include <stdint.h>

#include "wasmflo.h"

static char unit = 'C';

/* Skips JSON whitespace. */
static const char *ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* Parses a payload that is exactly one JSON string of one ASCII character. */
static bool parse_char_string(const char *s, size_t len, char *out, bool *is_string) {
  const char *end = s + len, *p = ws(s, end);
  *is_string = false;
  if (p >= end || *p != '"') return false;
  const char *q = p + 1;
  int c = -1;
  if (q < end && *q == '\\' && q + 5 < end && q[1] == 'u') {
    unsigned v = 0;
    for (int i = 2; i < 6; i++) {
      char h = q[i];
      unsigned d = h >= '0' && h <= '9' ? (unsigned)(h - '0')
                 : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
                 : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10) : 16u;
      if (d == 16) return false;
      v = v * 16 + d;
    }
    c = v < 128 ? (int)v : -1;
    q += 6;
  } else if (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20 && (unsigned char)*q < 0x80) {
    c = *q++;
  }
  if (c < 0 || q >= end || *q != '"') {
    /* Some other string (or not a string at all): unknown unit either way. */
    *is_string = q < end;
    return false;
  }
  if (ws(q + 1, end) != end) return false;
  *is_string = true;
  *out = (char)c;
  return true;
}


/* Appends the decimal digits of `v` to `out`; returns the new end. */
static char *put_u64(char *out, uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *out++ = tmp[--n];
  return out;
}

/* Writes `x` with exactly one decimal, as Rust's `{:.1}` does: the exact binary value,
 * rounded half to even. Returns the end of the text; `out` needs 330 bytes. */
static char *put_one_decimal(char *out, double x) {
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  if (bits >> 63) *out++ = '-';
  int biased = (int)((bits >> 52) & 0x7ff);
  uint64_t m = bits & ((1ull << 52) - 1);
  int e;
  if (biased == 0) {
    e = -1074;
  } else {
    m |= 1ull << 52;
    e = biased - 1075;
  }
  if (e >= 0) {
    /* An integer up to 2^1024: double it e times in base 10^9 limbs. */
    uint32_t limb[40];
    int n = 0;
    while (m) {
      limb[n++] = (uint32_t)(m % 1000000000u);
      m /= 1000000000u;
    }
    for (int i = 0; i < e; i++) {
      uint32_t carry = 0;
      for (int j = 0; j < n; j++) {
        uint32_t v = limb[j] * 2 + carry;
        carry = v >= 1000000000u;
        limb[j] = carry ? v - 1000000000u : v;
      }
      if (carry) limb[n++] = 1;
    }
    out = put_u64(out, limb[n - 1]);
    for (int j = n - 2; j >= 0; j--) {
      char tmp[9];
      uint32_t v = limb[j];
      for (int d = 8; d >= 0; d--) {
        tmp[d] = (char)('0' + v % 10);
        v /= 10;
      }
      memcpy(out, tmp, 9);
      out += 9;
    }
    memcpy(out, ".0", 2);
    return out + 2;
  }
  int k = -e;
  if (k > 60) {
    /* Below 2^-7: the first decimal is 0 and nothing rounds up. */
    memcpy(out, "0.0", 3);
    return out + 3;
  }
  uint64_t whole = m >> k, frac = m & ((1ull << k) - 1);
  uint64_t scaled = frac * 10; /* < 10 * 2^60 fits */
  uint64_t digit = scaled >> k, rest = scaled & ((1ull << k) - 1), half = 1ull << (k - 1);
  if (k == 0) digit = 0, rest = 0, half = 1;
  if (rest > half || (rest == half && (digit & 1))) digit++;
  if (digit == 10) {
    whole++;
    digit = 0;
  }
  out = put_u64(out, whole);
  *out++ = '.';
  *out++ = (char)('0' + digit);
  return out;
}

void exports_participant_definition(participant_definition_t *ret) {
  wasmflo_port_t in[] = {
      wasmflo_port("in", "number", "Temperature in °C", false),
      wasmflo_port("unit", "string", "\"C\" (default), \"F\" or \"K\"", true),
  };
  wasmflo_port_t out[] = {
      wasmflo_port("out", "string", "\"Temperature: 22.3 C\"", false),
      wasmflo_port("error", "object", "{\"error\": reason, \"port\": port} for each refused message", false),
  };
  ret->component = wasmflo_str("c/Format");
  ret->label = wasmflo_str("Formats a temperature as text (C)");
  ret->icon = wasmflo_str("font");
  ret->inports = wasmflo_ports(in, 2);
  ret->outports = wasmflo_ports(out, 2);
}

bool exports_participant_start(participant_nack_t *err) {
  (void)err;
  return true;
}

static bool format(double celsius, wasmflo_nack_t *err) {
  double v = unit == 'F' ? celsius * 9.0 / 5.0 + 32.0 : unit == 'K' ? celsius + 273.15 : celsius;
  double tenths = round(v * 10.0);
  if (!isfinite(v) || !isfinite(tenths)) {
    return wasmflo_nack(err, WASMFLO_INVALID_INPUT, "temperature is not finite in this unit");
  }
  double rounded = tenths / 10.0 + 0.0; /* + 0.0 turns -0.0 into 0.0 */
  char text[400], *p = text;
  static const char head[] = "\"Temperature: ";
  memcpy(p, head, sizeof head - 1);
  p = put_one_decimal(p + sizeof head - 1, rounded);
  *p++ = ' ';
  *p++ = unit;
  *p++ = '"';
  size_t n = (size_t)(p - text);
  if (!wasmflo_send_json("out", text, n)) return wasmflo_nack(err, WASMFLO_INTERNAL, "send refused");
  return true;
}

static bool process(participant_string_t *port, participant_message_t *msg, participant_nack_t *err) {
  if (!wasmflo_is_json(msg)) return wasmflo_nack(err, WASMFLO_INVALID_INPUT, "expected a JSON payload");
  const char *data = (const char *)msg->data.ptr;
  size_t len = msg->data.len;
  if (wasmflo_str_eq(port, "in")) {
    double celsius;
    if (!wasmflo_json_number(msg, &celsius, NULL, NULL)) {
      return wasmflo_nack(err, WASMFLO_INVALID_INPUT, "expected a temperature in °C as a JSON number");
    }
    return format(celsius, err);
  }
  if (wasmflo_str_eq(port, "unit")) {
    char c;
    bool is_string;
    if (parse_char_string(data, len, &c, &is_string) && (c == 'C' || c == 'F' || c == 'K')) {
      unit = c;
      return true;
    }
    return wasmflo_nack(err, WASMFLO_INVALID_INPUT, "unit must be the JSON string \"C\", \"F\" or \"K\"");
  }
  return wasmflo_nack(err, WASMFLO_INVALID_INPUT, "unknown inport");
}

bool exports_participant_process(participant_string_t *port, participant_message_t *msg, participant_nack_t *err) {
  bool ok = process(port, msg, err);
  participant_string_free(port);
  participant_message_free(msg);
  return ok;
}

bool exports_participant_on_timer(uint32_t id, participant_nack_t *err) {
  (void)id;
  (void)err;
  return true;
}
