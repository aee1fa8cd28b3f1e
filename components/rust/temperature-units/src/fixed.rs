//! `format!("{:.1}", x)` without `core::fmt`'s float code: the exact decimal value of a
//! finite f64, rounded to one decimal half to even (as `core::fmt` rounds), by integer
//! arithmetic. Values of 2^64 and above are written from a 1,088-bit integer.

/// Appends `x` (finite) with one decimal, exactly as `format!("{x:.1}")` would.
pub fn push_one_decimal(out: &mut String, x: f64) {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        out.push('-');
    }
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    // x = m * 2^e, m < 2^53.
    let (m, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, biased - 1075)
    };
    if e >= 0 {
        push_shifted(out, m, e.unsigned_abs());
        out.push_str(".0");
        return;
    }
    let k = e.unsigned_abs();
    // x = m * 2^-k < 2^(53-k): for k > 60 it is below 2^-8 < 0.05 and rounds to 0.0;
    // for k <= 60 every shift is under 64 bits and (m & mask) * 10 < 10 * 2^53 fits. u64
    // only: u128 arithmetic is library calls and long code, which a device interpreter
    // keeps in RAM.
    let (mut whole, mut tenth) = (0u64, 0u8);
    if k <= 60 {
        let mask = (1u64 << k) - 1;
        whole = m >> k;
        let scaled = (m & mask) * 10;
        tenth = (scaled >> k) as u8;
        let rest = scaled & mask;
        let half = 1u64 << (k - 1);
        if rest > half || (rest == half && tenth % 2 == 1) {
            tenth += 1;
            if tenth == 10 {
                tenth = 0;
                whole += 1;
            }
        }
    }
    push_u64(out, whole, 1);
    out.push('.');
    out.push(char::from(b'0' + tenth));
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
fn push_u64(out: &mut String, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while n > 0 || digits.len() - start < width {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    // ASCII digits: always UTF-8.
    out.push_str(core::str::from_utf8(&digits[start..]).unwrap_or_default());
}

/// Appends `m * 2^shift` in decimal (any f64 integer: `shift` <= 971).
fn push_shifted(out: &mut String, m: u64, shift: u32) {
    // Little-endian 32-bit limbs; 34 hold 2^1024 + 53 bits.
    let mut limbs = [0u32; 34];
    let word = (shift / 32) as usize;
    let bits = shift % 32;
    // m * 2^bits in three limbs, in u64s (m < 2^53, bits < 32).
    let low = (m & 0xffff_ffff) << bits;
    let high = ((m >> 32) << bits) + (low >> 32);
    for (limb, value) in limbs[word..].iter_mut().zip([low, high, high >> 32]) {
        *limb = value as u32;
    }
    // Chunks of nine digits, least significant first.
    let mut chunks = [0u32; 36];
    let mut count = 0;
    let mut top = limbs.len();
    loop {
        while top > 0 && limbs[top - 1] == 0 {
            top -= 1;
        }
        if top == 0 && count > 0 {
            break;
        }
        let mut rem = 0u64;
        for limb in limbs[..top].iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        chunks[count] = rem as u32;
        count += 1;
    }
    for (i, &chunk) in chunks[..count].iter().rev().enumerate() {
        push_u64(out, u64::from(chunk), if i == 0 { 1 } else { 9 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(x: f64) -> String {
        let mut s = String::new();
        push_one_decimal(&mut s, x);
        s
    }

    fn check(x: f64) {
        if x.is_finite() {
            assert_eq!(fixed(x), format!("{x:.1}"), "{x:e} ({:#x})", x.to_bits());
        }
    }

    /// xorshift64*.
    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed;
        move || {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            s.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn edge_values_match_core_fmt() {
        let specials = [
            0.0,
            -0.0,
            0.05,
            0.25,
            0.75,
            0.15,
            -0.25,
            2.5,
            9.95,
            99.95,
            -99.95,
            1e17,
            1e300,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            f64::EPSILON,
            (1u64 << 53) as f64,
            18_446_744_073_709_551_616.0,
            900_719_925_474_099.0 + 0.25,
            900_719_925_474_099.0 + 0.75,
            4_503_599_627_370_495.5,
        ];
        for x in specials {
            check(x);
            check(-x);
            for d in [-2i64, -1, 1, 2] {
                check(f64::from_bits(x.to_bits().wrapping_add_signed(d)));
            }
        }
        for e in -1074..=1023 {
            check(2f64.powi(e));
            check(f64::MAX / 2f64.powi(1023 - e.max(0)));
        }
    }

    /// Every exponent, random bits: 100,000 doubles, and 100,000 tenths `t / 10` —
    /// the only values `one_decimal` formats — with ties at every magnitude.
    #[test]
    fn random_doubles_match_core_fmt() {
        let mut next = rng(0x7e57_f1c5_ed00_0001);
        for _ in 0..100_000 {
            check(f64::from_bits(next()));
        }
        for i in 0..100_000u64 {
            let scale = 2f64.powi((i % 1100) as i32 - 40);
            let tenths = (f64::from_bits(next() >> 12 | 0x3ff0_0000_0000_0000) * scale).round();
            check(tenths / 10.0);
            check((tenths + 0.5) / 10.0);
            check(next() as f64 / 8.0);
        }
    }
}
