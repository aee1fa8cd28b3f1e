"""python/Format: turns a temperature in °C into "Temperature: 22.3 C".

One decimal, rounded half away from zero; a value that rounds to zero prints as 0.0
(never -0.0): the same outputs as temperature/Format (Rust).
"""

import math

import wasmflo

UNITS = {
    "C": lambda c: c,
    "F": lambda c: c * 9.0 / 5.0 + 32.0,
    "K": lambda c: c + 273.15,
}
unit = "C"


def round_half_away(x):
    # Python's round() rounds half to even; Rust's f64::round rounds half away from zero.
    t = float(math.trunc(x))
    if abs(x - t) >= 0.5:
        t += math.copysign(1.0, x)
    return t


def one_decimal(value):
    """`value` with one decimal, or None if it is not finite."""
    if not math.isfinite(value):
        return None
    if not math.isfinite(value * 10.0):
        return None
    tenths = round_half_away(value * 10.0)
    # + 0.0 turns -0.0 into 0.0; "%.1f" prints the exact binary value rounded half
    # to even, as Rust's "{:.1}" does.
    return f"{tenths / 10.0 + 0.0:.1f}"


class WitWorld:
    def definition(self):
        return wasmflo.definition(
            "python/Format",
            label="Formats a temperature as text (Python)",
            icon="font",
            inports=[
                wasmflo.port("in", "number", "Temperature in °C"),
                wasmflo.port("unit", "string", '"C" (default), "F" or "K"', parameter=True),
            ],
            outports=[
                wasmflo.port("out", "string", '"Temperature: 22.3 C"'),
                wasmflo.port("error", "object",
                             '{"error": reason, "port": port} for each refused message'),
            ],
        )

    def start(self):
        pass

    def process(self, port, msg):
        global unit
        value = wasmflo.json_of(msg)
        if port == "in":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise wasmflo.invalid_input("expected a temperature in °C as a JSON number")
            try:
                celsius = float(value)
            except OverflowError:
                raise wasmflo.invalid_input("number out of range")
            text = one_decimal(UNITS[unit](celsius))
            if text is None:
                raise wasmflo.invalid_input(f"temperature {celsius} °C is not finite in {unit}")
            wasmflo.send_json("out", f"Temperature: {text} {unit}")
        elif port == "unit":
            if not isinstance(value, str):
                raise wasmflo.invalid_input('unit must be the JSON string "C", "F" or "K"')
            if value not in UNITS:
                raise wasmflo.invalid_input(f'unknown unit "{value}": expected "C", "F" or "K"')
            unit = value
        else:
            raise wasmflo.invalid_input(f"unknown inport `{port}`")

    def on_timer(self, id):
        pass
