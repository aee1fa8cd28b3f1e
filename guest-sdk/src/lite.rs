//! Serde-free JSON for numbers and strings, for the device profile.
//!
//! serde_json and `core::fmt`'s float code are most of a small participant's code, and on
//! a device the interpreter keeps a copy of every function body in RAM. These functions
//! read and write the two JSON values most participants need with a few hundred bytes of
//! code. They accept exactly what `serde_json::from_slice::<f64>` / `::<String>` accept
//! and give the same values (bit for bit, including serde_json's own, not correctly
//! rounded, decimal conversion without `float_roundtrip`); [`write_string`] writes the
//! bytes `serde_json::to_vec(&str)` writes. Only the error texts differ: they are short.

use core::fmt;

/// Why a payload is not the JSON value asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteError {
    /// The payload ended inside the value, or was empty.
    Eof,
    /// Not valid JSON at this point.
    Syntax,
    /// Not the start of a value of the type asked for (another type, or not JSON).
    WrongType,
    /// A number too large for an f64.
    OutOfRange,
    /// Something after the value.
    Trailing,
}

impl LiteError {
    /// The error's text (what `Display` writes), without `core::fmt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eof => "unexpected end of input",
            Self::Syntax => "invalid JSON",
            Self::WrongType => "not a JSON value of the expected type",
            Self::OutOfRange => "number out of range",
            Self::Trailing => "trailing characters",
        }
    }
}

impl fmt::Display for LiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// The next byte, or 0 at the end (no JSON token starts with NUL).
    fn peek0(&self) -> u8 {
        self.peek().unwrap_or(0)
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.at += usize::from(b.is_some());
        b
    }

    fn skip_ws(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
        self.peek()
    }

    fn end<T>(mut self, value: T) -> Result<T, LiteError> {
        match self.skip_ws() {
            Some(_) => Err(LiteError::Trailing),
            None => Ok(value),
        }
    }

    fn digits(&mut self) {
        while self.peek0().is_ascii_digit() {
            self.at += 1;
        }
    }
}

/// `a * 10 + b` would exceed `max` (serde_json's `overflow!`).
fn overflows(a: u64, b: u64, max: u64) -> bool {
    a >= max / 10 && (a > max / 10 || b > max % 10)
}

/// Parses `bytes` as one JSON number (surrounding JSON whitespace allowed), exactly as
/// `serde_json::from_slice::<f64>` does.
pub fn f64(bytes: &[u8]) -> Result<f64, LiteError> {
    let mut r = Reader { bytes, at: 0 };
    let positive = match r.skip_ws() {
        None => return Err(LiteError::Eof),
        Some(b'-') => {
            r.at += 1;
            false
        }
        Some(b'0'..=b'9') => true,
        Some(_) => return Err(LiteError::WrongType),
    };
    let value = integer(&mut r, positive)?;
    r.end(value)
}

fn integer(r: &mut Reader<'_>, positive: bool) -> Result<f64, LiteError> {
    match r.next() {
        None => Err(LiteError::Eof),
        Some(b'0') => {
            if r.peek0().is_ascii_digit() {
                return Err(LiteError::Syntax);
            }
            number(r, positive, 0)
        }
        Some(c @ b'1'..=b'9') => {
            let mut significand = u64::from(c - b'0');
            while let c @ b'0'..=b'9' = r.peek0() {
                let digit = u64::from(c - b'0');
                if overflows(significand, digit, u64::MAX) {
                    // Further integer digits only scale the kept ones.
                    let mut exponent = 0i32;
                    while r.peek0().is_ascii_digit() {
                        r.at += 1;
                        exponent += 1;
                    }
                    return after_digits(r, positive, significand, exponent);
                }
                r.at += 1;
                significand = significand * 10 + digit;
            }
            number(r, positive, significand)
        }
        Some(_) => Err(LiteError::Syntax),
    }
}

fn number(r: &mut Reader<'_>, positive: bool, significand: u64) -> Result<f64, LiteError> {
    match r.peek0() {
        b'.' | b'e' | b'E' => after_digits(r, positive, significand, 0),
        // An integer: serde_json keeps it as u64/i64 and converts with `as f64`.
        _ if positive => Ok(significand as f64),
        _ => {
            let neg = (significand as i64).wrapping_neg();
            Ok(if neg >= 0 {
                -(significand as f64)
            } else {
                neg as f64
            })
        }
    }
}

/// After the integer digits: an optional fraction, an optional exponent.
fn after_digits(
    r: &mut Reader<'_>,
    positive: bool,
    mut significand: u64,
    mut exponent: i32,
) -> Result<f64, LiteError> {
    if r.peek0() == b'.' {
        r.at += 1;
        let start = r.at;
        while let c @ b'0'..=b'9' = r.peek0() {
            let digit = u64::from(c - b'0');
            if overflows(significand, digit, u64::MAX) {
                // serde_json ignores the digits that no longer fit.
                r.digits();
                break;
            }
            r.at += 1;
            significand = significand * 10 + digit;
            exponent -= 1;
        }
        if r.at == start {
            return Err(if r.peek().is_some() {
                LiteError::Syntax
            } else {
                LiteError::Eof
            });
        }
    }
    if let b'e' | b'E' = r.peek0() {
        r.at += 1;
        let positive_exp = match r.peek0() {
            b'+' => {
                r.at += 1;
                true
            }
            b'-' => {
                r.at += 1;
                false
            }
            _ => true,
        };
        let mut exp = match r.next() {
            None => return Err(LiteError::Eof),
            Some(c @ b'0'..=b'9') => i32::from(c - b'0'),
            Some(_) => return Err(LiteError::Syntax),
        };
        while let c @ b'0'..=b'9' = r.peek0() {
            r.at += 1;
            let digit = i32::from(c - b'0');
            if exp >= i32::MAX / 10 && (exp > i32::MAX / 10 || digit > i32::MAX % 10) {
                if significand != 0 && positive_exp {
                    return Err(LiteError::OutOfRange);
                }
                r.digits();
                return Ok(if positive { 0.0 } else { -0.0 });
            }
            exp = exp * 10 + digit;
        }
        exponent = if positive_exp {
            exponent.saturating_add(exp)
        } else {
            exponent.saturating_sub(exp)
        };
    }
    from_parts(positive, significand, exponent)
}

/// serde_json's conversion without `float_roundtrip`: one multiplication or division
/// by a power of ten (two or more divisions below 1e-308).
fn from_parts(positive: bool, significand: u64, mut exponent: i32) -> Result<f64, LiteError> {
    let mut f = significand as f64;
    loop {
        match POW10.get(exponent.unsigned_abs() as usize) {
            Some(&pow) => {
                if exponent >= 0 {
                    f *= pow;
                    if f.is_infinite() {
                        return Err(LiteError::OutOfRange);
                    }
                } else {
                    f /= pow;
                }
                break;
            }
            None => {
                if f == 0.0 {
                    break;
                }
                if exponent >= 0 {
                    return Err(LiteError::OutOfRange);
                }
                f /= 1e308;
                exponent += 308;
            }
        }
    }
    Ok(if positive { f } else { -f })
}

/// Parses `bytes` as one JSON string (surrounding JSON whitespace allowed), exactly as
/// `serde_json::from_slice::<String>` does: escapes decoded, control characters, lone
/// surrogates and invalid UTF-8 refused.
pub fn string(bytes: &[u8]) -> Result<String, LiteError> {
    let mut r = Reader { bytes, at: 0 };
    match r.skip_ws() {
        None => return Err(LiteError::Eof),
        Some(b'"') => r.at += 1,
        Some(_) => return Err(LiteError::WrongType),
    }
    let mut out = Vec::new();
    loop {
        match r.next().ok_or(LiteError::Eof)? {
            b'"' => break,
            b'\\' => {
                let c = match r.next().ok_or(LiteError::Eof)? {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => unicode_escape(&mut r)?,
                    _ => return Err(LiteError::Syntax),
                };
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
            0..=0x1f => return Err(LiteError::Syntax),
            b => out.push(b),
        }
    }
    let text = String::from_utf8(out).map_err(|_| LiteError::Syntax)?;
    r.end(text)
}

fn hex4(r: &mut Reader<'_>) -> Result<u16, LiteError> {
    let mut n = 0u16;
    for _ in 0..4 {
        let b = r.next().ok_or(LiteError::Eof)?;
        let d = (b as char).to_digit(16).ok_or(LiteError::Syntax)?;
        n = (n << 4) | d as u16;
    }
    Ok(n)
}

/// The character of a `\uXXXX` escape (the `\u` read), joining a surrogate pair.
fn unicode_escape(r: &mut Reader<'_>) -> Result<char, LiteError> {
    let first = hex4(r)?;
    let code = match first {
        0xdc00..=0xdfff => return Err(LiteError::Syntax),
        0xd800..=0xdbff => {
            if r.next().ok_or(LiteError::Eof)? != b'\\' || r.next().ok_or(LiteError::Eof)? != b'u' {
                return Err(LiteError::Syntax);
            }
            let second = hex4(r)?;
            if !(0xdc00..=0xdfff).contains(&second) {
                return Err(LiteError::Syntax);
            }
            0x10000 + ((u32::from(first) - 0xd800) << 10) + (u32::from(second) - 0xdc00)
        }
        _ => u32::from(first),
    };
    char::from_u32(code).ok_or(LiteError::Syntax)
}

/// Appends `text` as a JSON string, escaped as serde_json escapes it.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in text.as_bytes() {
        let escape = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.extend([HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
                continue;
            }
            _ => {
                out.push(b);
                continue;
            }
        };
        out.extend([b'\\', escape]);
    }
    out.push(b'"');
}

/// 1e0 to 1e308, the literals serde_json divides and multiplies by.
#[rustfmt::skip]
static POW10: [f64; 309] = [
    1e000, 1e001, 1e002, 1e003, 1e004, 1e005, 1e006, 1e007, 1e008, 1e009,
    1e010, 1e011, 1e012, 1e013, 1e014, 1e015, 1e016, 1e017, 1e018, 1e019,
    1e020, 1e021, 1e022, 1e023, 1e024, 1e025, 1e026, 1e027, 1e028, 1e029,
    1e030, 1e031, 1e032, 1e033, 1e034, 1e035, 1e036, 1e037, 1e038, 1e039,
    1e040, 1e041, 1e042, 1e043, 1e044, 1e045, 1e046, 1e047, 1e048, 1e049,
    1e050, 1e051, 1e052, 1e053, 1e054, 1e055, 1e056, 1e057, 1e058, 1e059,
    1e060, 1e061, 1e062, 1e063, 1e064, 1e065, 1e066, 1e067, 1e068, 1e069,
    1e070, 1e071, 1e072, 1e073, 1e074, 1e075, 1e076, 1e077, 1e078, 1e079,
    1e080, 1e081, 1e082, 1e083, 1e084, 1e085, 1e086, 1e087, 1e088, 1e089,
    1e090, 1e091, 1e092, 1e093, 1e094, 1e095, 1e096, 1e097, 1e098, 1e099,
    1e100, 1e101, 1e102, 1e103, 1e104, 1e105, 1e106, 1e107, 1e108, 1e109,
    1e110, 1e111, 1e112, 1e113, 1e114, 1e115, 1e116, 1e117, 1e118, 1e119,
    1e120, 1e121, 1e122, 1e123, 1e124, 1e125, 1e126, 1e127, 1e128, 1e129,
    1e130, 1e131, 1e132, 1e133, 1e134, 1e135, 1e136, 1e137, 1e138, 1e139,
    1e140, 1e141, 1e142, 1e143, 1e144, 1e145, 1e146, 1e147, 1e148, 1e149,
    1e150, 1e151, 1e152, 1e153, 1e154, 1e155, 1e156, 1e157, 1e158, 1e159,
    1e160, 1e161, 1e162, 1e163, 1e164, 1e165, 1e166, 1e167, 1e168, 1e169,
    1e170, 1e171, 1e172, 1e173, 1e174, 1e175, 1e176, 1e177, 1e178, 1e179,
    1e180, 1e181, 1e182, 1e183, 1e184, 1e185, 1e186, 1e187, 1e188, 1e189,
    1e190, 1e191, 1e192, 1e193, 1e194, 1e195, 1e196, 1e197, 1e198, 1e199,
    1e200, 1e201, 1e202, 1e203, 1e204, 1e205, 1e206, 1e207, 1e208, 1e209,
    1e210, 1e211, 1e212, 1e213, 1e214, 1e215, 1e216, 1e217, 1e218, 1e219,
    1e220, 1e221, 1e222, 1e223, 1e224, 1e225, 1e226, 1e227, 1e228, 1e229,
    1e230, 1e231, 1e232, 1e233, 1e234, 1e235, 1e236, 1e237, 1e238, 1e239,
    1e240, 1e241, 1e242, 1e243, 1e244, 1e245, 1e246, 1e247, 1e248, 1e249,
    1e250, 1e251, 1e252, 1e253, 1e254, 1e255, 1e256, 1e257, 1e258, 1e259,
    1e260, 1e261, 1e262, 1e263, 1e264, 1e265, 1e266, 1e267, 1e268, 1e269,
    1e270, 1e271, 1e272, 1e273, 1e274, 1e275, 1e276, 1e277, 1e278, 1e279,
    1e280, 1e281, 1e282, 1e283, 1e284, 1e285, 1e286, 1e287, 1e288, 1e289,
    1e290, 1e291, 1e292, 1e293, 1e294, 1e295, 1e296, 1e297, 1e298, 1e299,
    1e300, 1e301, 1e302, 1e303, 1e304, 1e305, 1e306, 1e307, 1e308,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    /// Number-ish text: printed doubles, long digit runs (past u64), huge and tiny
    /// exponents, and random strings over the characters of JSON numbers.
    fn number_text(rng: &mut Rng) -> Vec<u8> {
        let x = f64::from_bits(rng.next());
        let digits = |rng: &mut Rng, n: usize| -> String {
            (0..n)
                .map(|_| char::from(b'0' + rng.below(10) as u8))
                .collect()
        };
        let text = match rng.below(8) {
            0 => format!("{x}"),
            1 => format!("{x:e}"),
            2 => format!("{:.*}", rng.below(25), x * 1e-300),
            3 => {
                let n = rng.below(30) + 1;
                let m = rng.below(30);
                format!("{}.{}", digits(rng, n), digits(rng, m))
            }
            4 => {
                let n = rng.below(25) + 1;
                let e = rng.below(800) as i64 - 400;
                format!("{}e{e}", digits(rng, n))
            }
            5 => {
                let n = rng.below(14) + 1;
                format!("{}e{}", rng.below(3), digits(rng, n))
            }
            6 => format!("{}", rng.next() as i64),
            _ => {
                let alphabet = b"0123456789.eE+- \n\"nul";
                let n = rng.below(10);
                (0..n)
                    .map(|_| char::from(alphabet[rng.below(21)]))
                    .collect()
            }
        };
        let sign = if rng.below(3) == 0 { "-" } else { "" };
        let pad = [" ", "", "", "\t\n"][rng.below(4)];
        format!("{pad}{sign}{text}{pad}").into_bytes()
    }

    fn same_f64(bytes: &[u8]) {
        let expected = serde_json::from_slice::<f64>(bytes).ok().map(f64::to_bits);
        let got = super::f64(bytes).ok().map(f64::to_bits);
        assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(bytes));
    }

    /// Whether this serde_json rounds like the components' (no `float_roundtrip`). A
    /// workspace-wide build unifies in the host's `float_roundtrip`, which rounds
    /// correctly: then there is nothing to compare with (test this crate alone).
    fn serde_json_is_the_components() -> bool {
        let text = "2.2250738585072011e-308";
        let correct = text.parse::<f64>().ok();
        serde_json::from_slice::<f64>(text.as_bytes()).ok() != correct
    }

    #[test]
    fn numbers_match_serde_json() {
        if !serde_json_is_the_components() {
            println!("skipped: serde_json built with float_roundtrip; run -p wasmflo-guest");
            return;
        }
        for text in [
            "0",
            "-0",
            "-0.0",
            "1",
            "01",
            "1.",
            ".5",
            "1e",
            "1e+",
            "1e-",
            "-",
            "",
            " ",
            "22.25",
            "1e308",
            "1.8e308",
            "1e309",
            "1e-400",
            "0e999999999999",
            "1e999999999999",
            "1e-999999999999",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "184467440737095516150.5",
            "1844674407370955161.67",
            "0.000000000000000000000000000001e-300",
            "2.2250738585072011e-308",
            "null",
            "nul",
            "true",
            "\"1\"",
            "[1]",
            "1 2",
            "NaN",
            "inf",
            "+1",
            "0x10",
            "1_0",
            "\u{661}",
            "1\u{0}",
        ] {
            same_f64(text.as_bytes());
        }
        let mut rng = Rng(0x5eed_0ff6);
        for _ in 0..200_000 {
            same_f64(&number_text(&mut rng));
        }
    }

    fn same_string(bytes: &[u8]) {
        let expected = serde_json::from_slice::<String>(bytes).ok();
        assert_eq!(
            string(bytes).ok(),
            expected,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        if let Some(text) = expected {
            let mut out = Vec::new();
            write_string(&mut out, &text);
            assert_eq!(out, serde_json::to_vec(&text).unwrap_or_default());
        }
    }

    #[test]
    fn strings_match_serde_json() {
        for text in [
            "\"C\"",
            " \"F\" ",
            "\"\\u0046\"",
            "\"\\u004b\"",
            "\"\\u004B\"",
            "\"\\ud83d\\ude00\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a",
            "\"\"",
            "\"\u{1}\"",
            "\"é€\"",
            "\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"",
            "C",
            "1",
            "null",
            "\"a\" x",
        ] {
            same_string(text.as_bytes());
        }
        same_string(b"\"\xff\"");
        same_string(b"\"\xc3\"");
        let pieces: [&[u8]; 16] = [
            b"a",
            b"C",
            b"\\",
            b"\"",
            b"u",
            b"0",
            b"4",
            b"d8",
            b"dc",
            b"\\n",
            b"\\u00",
            b"\x01",
            b"\x7f",
            b"\xc3\xa9",
            b"\xe2",
            b" ",
        ];
        let mut rng = Rng(0x5eed_0f57);
        for _ in 0..200_000 {
            let mut bytes = b"\"".to_vec();
            for _ in 0..rng.below(8) {
                bytes.extend_from_slice(pieces[rng.below(16)]);
            }
            if rng.below(8) != 0 {
                bytes.push(b'"');
            }
            same_string(&bytes);
        }
        let all: String = (0u8..0x80).map(char::from).chain("é€😀".chars()).collect();
        same_string(&serde_json::to_vec(&all).unwrap_or_default());
    }
}
