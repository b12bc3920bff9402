//! T5's bidirectional relative-position buckets, on the CPU in f64.
//!
//! transformers computes the logarithmic buckets in f32 on the device; the bucket boundaries
//! fall exactly on integers (n = 16, 32, 64 for 32 buckets and distance 128), where an f32 or GPU
//! `log` a few ULP off would truncate to the wrong bucket. In f64 the boundary values are exact
//! here, and f32 gives the same integers there too (ln 16 and ln 32 round to exact multiples of
//! the rounded ln 2), so this table equals transformers'.

/// The bucket of `relative = key_position − query_position`.
pub fn bucket(relative: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = num_buckets / 2;
    let mut b = if relative > 0 { half } else { 0 };
    let n = relative.unsigned_abs() as usize;
    let max_exact = half / 2;
    b += if n < max_exact {
        n
    } else {
        let scaled = (n as f64 / max_exact as f64).ln()
            / (max_distance as f64 / max_exact as f64).ln()
            * (half - max_exact) as f64;
        (max_exact + scaled as usize).min(half - 1)
    };
    b
}

/// Bucket ids `[q, k]` for `len` queries and keys, row-major (query-major).
pub fn bucket_table(len: usize, num_buckets: usize, max_distance: usize) -> Vec<i32> {
    let mut out = Vec::with_capacity(len * len);
    for q in 0..len as i64 {
        for k in 0..len as i64 {
            out.push(bucket(k - q, num_buckets, max_distance) as i32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::bucket;

    /// transformers' `_relative_position_bucket` (bidirectional, 32 buckets, distance 128),
    /// evaluated with PyTorch for these offsets.
    #[test]
    fn buckets_match_transformers() {
        let cases: [(i64, usize); 16] = [
            (0, 0),
            (1, 17),
            (-1, 1),
            (7, 23),
            (-7, 7),
            (8, 24),
            (-8, 8),
            (15, 25),
            (16, 26),
            (-16, 10),
            (31, 27),
            (32, 28),
            (64, 30),
            (-64, 14),
            (127, 31),
            (-1000, 15),
        ];
        for (rel, want) in cases {
            assert_eq!(bucket(rel, 32, 128), want, "relative position {rel}");
        }
    }
}
