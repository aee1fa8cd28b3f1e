"""python/Stats: summary statistics over the last `window` readings.

Each number on `in` joins a sliding window (parameter `window`, default 60 readings);
`out` gets {"count", "mean", "median", "stdev", "min", "max", "p10", "p90"} for the
window, computed with Python's `statistics` module. Non-numbers are refused.
"""

import math
import statistics
from collections import deque

import wasmflo

readings = deque(maxlen=60)


def summary(values):
    values = list(values)
    out = {
        "count": len(values),
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }
    if len(values) > 1:
        deciles = statistics.quantiles(values, n=10, method="inclusive")
        out["p10"], out["p90"] = deciles[0], deciles[-1]
    else:
        out["p10"] = out["p90"] = values[0]
    return out


class WitWorld:
    def definition(self):
        return wasmflo.definition(
            "python/Stats",
            label="Summary statistics over a sliding window (Python)",
            icon="bar-chart",
            inports=[
                wasmflo.port("in", "number", "A reading"),
                wasmflo.port("window", "int", "Readings kept (default 60)", parameter=True),
            ],
            outports=[
                wasmflo.port("out", "object", "count, mean, median, stdev, min, max, p10, p90"),
                wasmflo.port("error", "object",
                             '{"error": reason, "port": port} for each refused message'),
            ],
        )

    def start(self):
        pass

    def process(self, port, msg):
        global readings
        value = wasmflo.json_of(msg)
        number = not isinstance(value, bool) and isinstance(value, (int, float))
        if port == "in":
            if not number or not math.isfinite(float(value)):
                raise wasmflo.invalid_input("expected a reading as a finite JSON number")
            readings.append(float(value))
            wasmflo.send_json("out", summary(readings))
        elif port == "window":
            # .fbp IIPs arrive as strings ('20' -> WINDOW stats), as in MsgFlo.
            if isinstance(value, str):
                try:
                    value, number = float(value.strip()), True
                except ValueError:
                    pass
            if not number or not math.isfinite(value) or value != int(value) or not 1 <= value <= 100_000:
                raise wasmflo.invalid_input("window must be an integer from 1 to 100000")
            readings = deque(readings, maxlen=int(value))
        else:
            raise wasmflo.invalid_input(f"unknown inport `{port}`")

    def on_timer(self, id):
        pass
