/* wasmflo guest SDK for C: small helpers over the bindings that `wasmflo build`
 * generates from wit/participant.wit (participant.h, with wit-bindgen's C generator).
 *
 * Ownership follows wit-bindgen: arguments of exported functions belong to the callee
 * (free them), values returned to the host must be heap-allocated (the host frees them
 * after the call), and arguments passed to imports stay the caller's. No WASI is
 * needed, so a C participant also runs on the no_std edge host. */
#ifndef WASMFLO_H
#define WASMFLO_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "participant.h"

typedef participant_string_t wasmflo_string_t;
typedef participant_message_t wasmflo_message_t;
typedef participant_nack_t wasmflo_nack_t;
typedef wasmflo_participant_types_port_t wasmflo_port_t;

#define WASMFLO_INVALID_INPUT WASMFLO_PARTICIPANT_TYPES_NACK_KIND_INVALID_INPUT
#define WASMFLO_UNAVAILABLE WASMFLO_PARTICIPANT_TYPES_NACK_KIND_UNAVAILABLE
#define WASMFLO_INTERNAL WASMFLO_PARTICIPANT_TYPES_NACK_KIND_INTERNAL

/* A heap copy of `s`, for values handed to the host. */
static inline wasmflo_string_t wasmflo_str(const char *s) {
  wasmflo_string_t out;
  participant_string_dup(&out, s);
  return out;
}

/* Whether `s` (not NUL-terminated) equals the C string `lit`. */
static inline bool wasmflo_str_eq(const wasmflo_string_t *s, const char *lit) {
  size_t n = strlen(lit);
  return s->len == n && memcmp(s->ptr, lit, n) == 0;
}

/* A port description for `definition()`. */
static inline wasmflo_port_t wasmflo_port(const char *id, const char *type,
                                          const char *description, bool parameter) {
  wasmflo_port_t p;
  p.id = wasmflo_str(id);
  p.type = wasmflo_str(type);
  p.description = wasmflo_str(description);
  p.schema.is_some = false;
  p.parameter = parameter;
  return p;
}

/* A heap array of `n` ports, for `definition()`. */
static inline wasmflo_participant_types_list_port_t wasmflo_ports(const wasmflo_port_t *ports,
                                                                  size_t n) {
  wasmflo_participant_types_list_port_t list;
  list.len = n;
  list.ptr = n ? malloc(n * sizeof *ports) : NULL;
  if (n) memcpy(list.ptr, ports, n * sizeof *ports);
  return list;
}

/* Fills `err` and returns false: `return wasmflo_nack(err, WASMFLO_INVALID_INPUT, "...")`. */
static inline bool wasmflo_nack(wasmflo_nack_t *err, uint8_t kind, const char *reason) {
  err->kind = kind;
  participant_string_dup(&err->reason, reason);
  return false;
}

/* Whether the message's content type is JSON (empty, application/json or +json). */
static inline bool wasmflo_is_json(const wasmflo_message_t *msg) {
  size_t n = msg->content_type.len;
  const char *ct = (const char *)msg->content_type.ptr;
  size_t end = 0;
  while (end < n && ct[end] != ';') end++;
  while (end > 0 && (ct[end - 1] == ' ' || ct[end - 1] == '\t')) end--;
  size_t start = 0;
  while (start < end && (ct[start] == ' ' || ct[start] == '\t')) start++;
  if (end == start) return true;
  const char *json = "application/json";
  size_t len = end - start;
  if (len == 16 && strncasecmp(ct + start, json, 16) == 0) return true;
  return len >= 5 && strncasecmp(ct + end - 5, "+json", 5) == 0;
}

/* Sends `len` bytes of JSON text on `port`; false if the host refused it. */
static inline bool wasmflo_send_json(const char *port, const char *json, size_t len) {
  wasmflo_string_t p;
  participant_string_set(&p, port);
  wasmflo_message_t msg;
  participant_string_set(&msg.content_type, "application/json");
  msg.data.ptr = (uint8_t *)json;
  msg.data.len = len;
  msg.metadata.ptr = NULL;
  msg.metadata.len = 0;
  wasmflo_participant_types_send_error_t e;
  return wasmflo_participant_host_send(&p, &msg, &e);
}

/* Parses a payload that is exactly one JSON number (RFC 8259 grammar, surrounding
 * whitespace allowed) into `*out`; false for anything else, including numbers out of
 * the range of a double. `*text`/`*text_len` receive the number's own characters. */
static inline bool wasmflo_json_number(const wasmflo_message_t *msg, double *out,
                                       const char **text, size_t *text_len) {
  const char *s = (const char *)msg->data.ptr, *end = s + msg->data.len;
#define WASMFLO_WS(p) while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++
#define WASMFLO_DIGITS(p) while (p < end && *p >= '0' && *p <= '9') p++
  const char *p = s;
  WASMFLO_WS(p);
  const char *start = p;
  if (p < end && *p == '-') p++;
  if (p < end && *p == '0') p++;
  else if (p < end && *p >= '1' && *p <= '9') { WASMFLO_DIGITS(p); }
  else return false;
  if (p < end && *p == '.') {
    const char *q = ++p;
    WASMFLO_DIGITS(p);
    if (q == p) return false;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    const char *q = p;
    WASMFLO_DIGITS(p);
    if (q == p) return false;
  }
  const char *num_end = p;
  WASMFLO_WS(p);
#undef WASMFLO_WS
#undef WASMFLO_DIGITS
  if (p != end) return false;
  size_t n = (size_t)(num_end - start);
  char buf[64];
  char *copy = n < sizeof buf ? buf : malloc(n + 1);
  if (!copy) return false;
  memcpy(copy, start, n);
  copy[n] = 0;
  *out = strtod(copy, NULL);
  if (copy != buf) free(copy);
  if (text) *text = start;
  if (text_len) *text_len = n;
  return *out - *out == 0; /* finite: serde_json refuses numbers out of range too */
}

/* Parses a number the way MsgFlo participants take parameters: a JSON number, or a
 * JSON string holding one (`.fbp` IIPs such as `'5' -> WINDOW x` arrive as strings). */
static inline bool wasmflo_number(const wasmflo_message_t *msg, double *out) {
  if (wasmflo_json_number(msg, out, NULL, NULL)) return true;
  const char *s = (const char *)msg->data.ptr, *end = s + msg->data.len;
  while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
  while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r')) end--;
  if (end - s < 3 || *s != '"' || end[-1] != '"') return false;
  s++, end--;
  while (s < end && *s == ' ') s++;
  while (end > s && end[-1] == ' ') end--;
  char buf[64];
  size_t n = (size_t)(end - s);
  if (n == 0 || n >= sizeof buf || memchr(s, '\\', n) || memchr(s, '"', n)) return false;
  memcpy(buf, s, n);
  buf[n] = 0;
  char *stop;
  *out = strtod(buf, &stop);
  return stop == buf + n && *out - *out == 0;
}

/* Writes a log line attributed to this process. */
static inline void wasmflo_log(uint8_t level, const char *text) {
  wasmflo_string_t t;
  participant_string_set(&t, text);
  wasmflo_participant_host_log(level, &t);
}

#endif
