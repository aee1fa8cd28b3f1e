"""{{component}}: counts the messages on `in` and sends each on `out` with its number."""

import wasmflo

seen = 0


class WitWorld:
    def definition(self):
        return wasmflo.definition(
            "{{component}}",
            label="Numbers the messages it forwards",
            inports=[wasmflo.port("in", "any", "Any JSON message")],
            outports=[wasmflo.port("out", "object", '{"n": count, "message": the message}')],
        )

    def start(self):
        pass

    def process(self, port, msg):
        global seen
        message = wasmflo.json_of(msg)
        seen += 1
        wasmflo.send_json("out", {"n": seen, "message": message})

    def on_timer(self, id):
        pass
