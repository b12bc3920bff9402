//! Byte-level mutations of a real file: bit flips, overwritten bytes and integers, truncation,
//! deletions, insertions, splices (a chunk of the file copied elsewhere), and numbers written as
//! text replaced by awkward ones (0, −1, 2⁶³, NaN, 1e999, ...). Positions are drawn relative to
//! the input length, so one strategy serves files of any size.

use proptest::prelude::*;
use proptest::sample::Index;

/// Integers that break size and offset arithmetic, written over binary fields.
pub const WORDS: [u64; 12] = [
    0,
    1,
    0x7f,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 32,
    1 << 53,
    1 << 62,
    i64::MAX as u64,
    u64::MAX,
];

/// Numbers as text, for JSON and other text formats: zero, negatives, the edges of i32, u32,
/// i64, u64 and f64, non-finite spellings, fractions where integers belong.
pub const NUMBERS: [&str; 20] = [
    "0",
    "-0",
    "1",
    "-1",
    "0.5",
    "2147483648",
    "4294967296",
    "9007199254740993",
    "4611686018427387904",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "1e308",
    "-1e308",
    "1e999",
    "NaN",
    "Infinity",
    "1e-320",
];

#[derive(Clone, Debug)]
pub enum Mutation {
    FlipBit {
        at: Index,
        bit: u8,
    },
    SetByte {
        at: Index,
        byte: u8,
    },
    /// Overwrite `width` bytes at `at` with a little-endian [`WORDS`] entry.
    SetWord {
        at: Index,
        word: usize,
        width: usize,
    },
    Truncate {
        at: Index,
    },
    Delete {
        at: Index,
        len: usize,
    },
    Insert {
        at: Index,
        bytes: Vec<u8>,
    },
    /// Copy `len` bytes from `from` to `to` (inserted): duplicated records, overlapping fields.
    Splice {
        from: Index,
        to: Index,
        len: usize,
    },
    /// Replace the `nth` number written as ASCII text with a [`NUMBERS`] entry.
    Number {
        nth: Index,
        text: usize,
    },
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        1 => (any::<Index>(), 0..WORDS.len(), prop::sample::select(vec![1usize, 2, 4, 8]))
            .prop_map(|(at, word, width)| Mutation::SetWord { at, word, width }),
        1 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<Index>(), 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<Index>(), any::<Index>(), 1usize..256)
            .prop_map(|(from, to, len)| Mutation::Splice { from, to, len }),
        // Numbers are where lying sizes live: draw them as often as all raw byte edits.
        4 => (any::<Index>(), 0..NUMBERS.len()).prop_map(|(nth, text)| Mutation::Number { nth, text }),
    ]
}

/// One to four mutations of `seed`.
pub fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(mutation(), 1..=4).prop_map(move |ms| apply(&seed, &ms))
}

/// `input` with `mutations` applied in order.
pub fn apply(input: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut b = input.to_vec();
    for m in mutations {
        apply_one(&mut b, m);
    }
    b
}

fn apply_one(b: &mut Vec<u8>, m: &Mutation) {
    let n = b.len();
    // Positions on an empty file: only insertions apply.
    let pos = |i: &Index| if n == 0 { 0 } else { i.index(n) };
    match m {
        Mutation::FlipBit { at, bit } if n > 0 => b[pos(at)] ^= 1 << bit,
        Mutation::SetByte { at, byte } if n > 0 => b[pos(at)] = *byte,
        Mutation::SetWord { at, word, width } if n > 0 => {
            let bytes = WORDS[*word].to_le_bytes();
            let start = pos(at);
            let end = (start + width).min(n);
            b[start..end].copy_from_slice(&bytes[..end - start]);
        }
        Mutation::Truncate { at } => b.truncate(pos(at)),
        Mutation::Delete { at, len } if n > 0 => {
            let start = pos(at);
            b.drain(start..(start + len).min(n));
        }
        Mutation::Insert { at, bytes } => {
            let at = pos(at);
            b.splice(at..at, bytes.iter().copied());
        }
        Mutation::Splice { from, to, len } if n > 0 => {
            let start = pos(from);
            let chunk = b[start..(start + len).min(n)].to_vec();
            let to = pos(to);
            b.splice(to..to, chunk);
        }
        Mutation::Number { nth, text } => {
            let spans = number_spans(b);
            if !spans.is_empty() {
                let (s, e) = spans[nth.index(spans.len())];
                b.splice(s..e, NUMBERS[*text].bytes());
            }
        }
        _ => {}
    }
}

/// Byte ranges of the numbers written as ASCII text (`-12`, `3.5e-4`) in `b`.
fn number_spans(b: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts =
            b[i].is_ascii_digit() || (b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit));
        // Digits inside a word (`model-00001`, `block.3`) are numbers too: key names lie as well.
        if starts {
            let s = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_digit() || b".eE+-".contains(&b[i])) {
                i += 1;
            }
            spans.push((s, i));
        } else {
            i += 1;
        }
    }
    spans
}
