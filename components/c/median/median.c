/* c/Median: removes spikes from a stream of readings. Each number on `in` is added to a
 * window of the last `window` readings (odd, 1 to 15; default 5) and the median of the
 * window goes out on `out`, as the reading's own JSON text, so no digit is invented.
 * Fixed memory, no allocation per message, no WASI: it runs on the edge host as is. */
#include <stdint.h>

#include "wasmflo.h"

#define MAX_WINDOW 15
#define MAX_TEXT 32

typedef struct {
  double value;
  char text[MAX_TEXT];
  uint8_t len;
} reading_t;

static reading_t ring[MAX_WINDOW];
static unsigned window = 5, count = 0, next = 0;

void exports_participant_definition(participant_definition_t *ret) {
  wasmflo_port_t in[] = {
      wasmflo_port("in", "number", "A reading", false),
      wasmflo_port("window", "int", "Readings the median is taken over: odd, 1 to 15 (default 5)", true),
  };
  wasmflo_port_t out[] = {
      wasmflo_port("out", "number", "The median of the last `window` readings", false),
      wasmflo_port("error", "object", "{\"error\": reason, \"port\": port} for each refused message", false),
  };
  ret->component = wasmflo_str("c/Median");
  ret->label = wasmflo_str("Median filter against spikes (C)");
  ret->icon = wasmflo_str("filter");
  ret->inports = wasmflo_ports(in, 2);
  ret->outports = wasmflo_ports(out, 2);
}

bool exports_participant_start(participant_nack_t *err) {
  (void)err;
  return true;
}

static bool add(const wasmflo_message_t *msg, wasmflo_nack_t *err) {
  double value;
  const char *text;
  size_t len;
  if (!wasmflo_json_number(msg, &value, &text, &len)) {
    return wasmflo_nack(err, WASMFLO_INVALID_INPUT, "expected a reading as a JSON number");
  }
  if (len >= MAX_TEXT) return wasmflo_nack(err, WASMFLO_INVALID_INPUT, "reading longer than 31 characters");
  reading_t *r = &ring[next];
  r->value = value;
  memcpy(r->text, text, len);
  r->len = (uint8_t)len;
  next = (next + 1) % window;
  if (count < window) count++;
  /* Insertion sort of at most 15 pointers: cheaper than anything cleverer. */
  const reading_t *sorted[MAX_WINDOW];
  for (unsigned i = 0; i < count; i++) {
    const reading_t *x = &ring[i];
    unsigned j = i;
    while (j > 0 && sorted[j - 1]->value > x->value) {
      sorted[j] = sorted[j - 1];
      j--;
    }
    sorted[j] = x;
  }
  const reading_t *median = sorted[count / 2];
  if (!wasmflo_send_json("out", median->text, median->len)) {
    return wasmflo_nack(err, WASMFLO_INTERNAL, "the host refused the output");
  }
  return true;
}

static bool set_window(const wasmflo_message_t *msg, wasmflo_nack_t *err) {
  double w;
  if (!wasmflo_number(msg, &w) || w < 1 || w > MAX_WINDOW || w != (double)(unsigned)w ||
      ((unsigned)w % 2) == 0) {
    return wasmflo_nack(err, WASMFLO_INVALID_INPUT, "window must be an odd number from 1 to 15");
  }
  window = (unsigned)w;
  count = next = 0;
  return true;
}

bool exports_participant_process(participant_string_t *port, participant_message_t *msg, participant_nack_t *err) {
  bool ok;
  if (!wasmflo_is_json(msg)) ok = wasmflo_nack(err, WASMFLO_INVALID_INPUT, "expected a JSON payload");
  else if (wasmflo_str_eq(port, "in")) ok = add(msg, err);
  else if (wasmflo_str_eq(port, "window")) ok = set_window(msg, err);
  else ok = wasmflo_nack(err, WASMFLO_INVALID_INPUT, "unknown inport");
  participant_string_free(port);
  participant_message_free(msg);
  return ok;
}

bool exports_participant_on_timer(uint32_t id, participant_nack_t *err) {
  (void)id;
  (void)err;
  return true;
}
