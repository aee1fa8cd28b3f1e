/* {{component}}: counts the messages on `in` and sends each on `out` with its number.
 * Build with `wasmflo build DIR`; the bindings (participant.h) and wasmflo.h come from
 * the build. */
#include <stdio.h>

#include "wasmflo.h"

static unsigned long long seen = 0;

void exports_participant_definition(participant_definition_t *ret) {
  wasmflo_port_t in[] = {wasmflo_port("in", "any", "Any JSON message", false)};
  wasmflo_port_t out[] = {wasmflo_port("out", "object", "{\"n\": count, \"message\": the message}", false)};
  ret->component = wasmflo_str("{{component}}");
  ret->label = wasmflo_str("Numbers the messages it forwards");
  ret->icon = wasmflo_str("cog");
  ret->inports = wasmflo_ports(in, 1);
  ret->outports = wasmflo_ports(out, 1);
}

bool exports_participant_start(participant_nack_t *err) {
  (void)err;
  return true;
}

bool exports_participant_process(participant_string_t *port, participant_message_t *msg, participant_nack_t *err) {
  bool ok = true;
  if (!wasmflo_is_json(msg)) {
    ok = wasmflo_nack(err, WASMFLO_INVALID_INPUT, "expected a JSON payload");
  } else {
    seen++;
    char head[48];
    int n = snprintf(head, sizeof head, "{\"n\":%llu,\"message\":", seen);
    size_t len = (size_t)n + msg->data.len + 1;
    char *out = malloc(len);
    if (!out) {
      ok = wasmflo_nack(err, WASMFLO_INTERNAL, "out of memory");
    } else {
      memcpy(out, head, (size_t)n);
      memcpy(out + n, msg->data.ptr, msg->data.len);
      out[len - 1] = '}';
      if (!wasmflo_send_json("out", out, len)) ok = wasmflo_nack(err, WASMFLO_INTERNAL, "send refused");
      free(out);
    }
  }
  participant_string_free(port);
  participant_message_free(msg);
  return ok;
}

bool exports_participant_on_timer(uint32_t id, participant_nack_t *err) {
  (void)id;
  (void)err;
  return true;
}
