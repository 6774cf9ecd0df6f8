//! ITU-T G.711 µ-law and A-law, bit-exact with the G.191 reference (`g711.c`).
//!
//! Decoding is a table lookup built at compile time; encoding is a few integer operations
//! per sample, which beats a 64 KiB table for cache footprint on a box that also runs Whisper.

const BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 8159;
const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

#[inline]
fn segment(val: i32, table: &[i32; 8]) -> usize {
    let mut seg = 0;
    while seg < 8 && val > table[seg] {
        seg += 1;
    }
    seg
}

/// Encode a 16-bit linear sample to µ-law (the G.191 14-bit path: the two low bits are dropped).
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    // G.191 takes the one's complement of negative samples (Sun's g711.c negates, which
    // differs by one code for tiny negative values).
    let x = sample as i32;
    let (mut v, mask) = if x < 0 {
        ((!x) >> 2, 0x7F)
    } else {
        (x >> 2, 0xFF)
    };
    if v > ULAW_CLIP {
        v = ULAW_CLIP;
    }
    v += BIAS >> 2;
    let seg = segment(v, &SEG_UEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let uval = ((seg as i32) << 4) | ((v >> (seg + 1)) & 0xF);
    (uval ^ mask) as u8
}

/// Encode a 16-bit linear sample to A-law (the G.191 13-bit path).
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut v = (sample as i32) >> 3;
    let mask: i32 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &SEG_AEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut aval = (seg as i32) << 4;
    if seg < 2 {
        aval |= (v >> 1) & 0xF;
    } else {
        aval |= (v >> seg) & 0xF;
    }
    (aval ^ mask) as u8
}

const fn ulaw_decode(u: u8) -> i16 {
    let u = !u as i32;
    let mut t = ((u & 0x0F) << 3) + BIAS;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 { BIAS - t } else { t - BIAS }) as i16
}

const fn alaw_decode(a: u8) -> i16 {
    let a = (a ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn build_table(ulaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if ulaw {
            ulaw_decode(i as u8)
        } else {
            alaw_decode(i as u8)
        };
        i += 1;
    }
    table
}

static ULAW_TABLE: [i16; 256] = build_table(true);
static ALAW_TABLE: [i16; 256] = build_table(false);

/// Decode one µ-law byte.
#[inline]
pub fn ulaw_to_linear(u: u8) -> i16 {
    ULAW_TABLE[u as usize]
}

/// Decode one A-law byte.
#[inline]
pub fn alaw_to_linear(a: u8) -> i16 {
    ALAW_TABLE[a as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference points from the G.191 tables (and Sun's g711.c, which they match).
    #[test]
    fn ulaw_reference_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0xF0), 120);
        assert_eq!(ulaw_to_linear(0x70), -120);
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(linear_to_ulaw(-32768), 0x00);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
    }

    #[test]
    fn alaw_reference_values() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(32767), 0xAA);
        assert_eq!(linear_to_alaw(-32768), 0x2A);
    }

    #[test]
    fn every_code_round_trips() {
        for b in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "A-law {b:#04x}");
            // µ-law has two zeros (0x7F, 0xFF); both decode to 0, which encodes as 0xFF.
            let expect = if b == 0x7F { 0xFF } else { b };
            assert_eq!(linear_to_ulaw(ulaw_to_linear(b)), expect, "µ-law {b:#04x}");
        }
    }

    #[test]
    fn quantisation_error_is_bounded_by_segment_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let u = ulaw_to_linear(linear_to_ulaw(s)) as i32;
            let a = alaw_to_linear(linear_to_alaw(s)) as i32;
            let mag = (s as i32).abs();
            // Step size doubles per segment; half a step plus the clip region is the worst case.
            let bound = (mag / 16).max(16) + 260;
            assert!((u - s as i32).abs() <= bound, "µ-law {s} -> {u}");
            assert!((a - s as i32).abs() <= bound, "A-law {s} -> {a}");
        }
    }
}
