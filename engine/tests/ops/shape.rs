//! Shape ops against f64 CPU references. Copies, permutations, nearest upsampling and gathers move
//! values unchanged, so they are compared exactly (tolerance 0); only bilinear resize and average
//! pooling compute.

use half::{bf16, f16};
use iterinv_engine::ops::shape::{chunk, concat, permute, slice, split};
use iterinv_engine::{Gpu, GpuOptions, Tensor};

use crate::common::{assert_close, f64s, gpu, upload, Rng};

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

/// Row-major index of `coord` in `shape`.
fn index(shape: &[usize], coord: &[usize]) -> usize {
    coord.iter().zip(shape).fold(0, |i, (&c, &s)| i * s + c)
}

fn coords(shape: &[usize], mut lin: usize) -> Vec<usize> {
    let mut c = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        c[d] = lin % shape[d];
        lin /= shape[d];
    }
    c
}

/// x[.., start..end, ..] along `dim`, as f64.
fn slice_ref(x: &[f32], shape: &[usize], dim: usize, start: usize, end: usize) -> Vec<f64> {
    let mut out_shape = shape.to_vec();
    out_shape[dim] = end - start;
    (0..numel(&out_shape))
        .map(|lin| {
            let mut c = coords(&out_shape, lin);
            c[dim] += start;
            x[index(shape, &c)] as f64
        })
        .collect()
}

#[test]
fn concat_three_tensors_on_first_middle_and_last_dims() {
    let mut rng = Rng::new(10);
    for dim in [0usize, 1, 3] {
        let base = [3usize, 5, 2, 7];
        let sizes = [rng.range(1, 6), rng.range(1, 6), rng.range(1, 6)];
        let mut shapes = Vec::new();
        let mut data = Vec::new();
        let mut ts = Vec::new();
        for (k, &s) in sizes.iter().enumerate() {
            let mut shape = base.to_vec();
            shape[dim] = s;
            let v = rng.vec(numel(&shape), -2.0, 2.0);
            // The middle input is stored as f16 (values rounded first so the reference is exact).
            let t = if k == 1 {
                let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
                data.push(h.iter().map(|x| x.to_f32()).collect::<Vec<_>>());
                Tensor::from_f16(gpu(), &shape, &h).unwrap()
            } else {
                data.push(v.clone());
                upload(&shape, &v)
            };
            shapes.push(shape);
            ts.push(t);
        }
        let refs: Vec<&Tensor> = ts.iter().collect();
        let out = concat(&refs, dim).unwrap();
        let mut out_shape = base.to_vec();
        out_shape[dim] = sizes.iter().sum();
        assert_eq!(out.shape(), &out_shape[..]);
        let expected: Vec<f64> = (0..numel(&out_shape))
            .map(|lin| {
                let mut c = coords(&out_shape, lin);
                let mut k = 0;
                while c[dim] >= sizes[k] {
                    c[dim] -= sizes[k];
                    k += 1;
                }
                data[k][index(&shapes[k], &c)] as f64
            })
            .collect();
        assert_close(&format!("concat dim {dim}"), &out, &expected, 0.0, 0.0);
    }
    // One input is a copy; the method form agrees.
    let a = upload(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let one = Tensor::concat(&[&a], 1).unwrap();
    assert_close(
        "concat of one",
        &one,
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        0.0,
        0.0,
    );
}

#[test]
fn slice_split_and_chunk_edges() {
    let mut rng = Rng::new(11);
    let shape = [4usize, 37, 9];
    let x = rng.vec(numel(&shape), -1.0, 1.0);
    let t = upload(&shape, &x);
    for (dim, start, end) in [
        (0, 0, 4),
        (0, 3, 4),
        (1, 0, 37),
        (1, 5, 36),
        (1, 36, 37),
        (2, 0, 1),
        (2, 4, 9),
        (2, 9, 9),
    ] {
        let out = slice(&t, dim, start, end).unwrap();
        let mut s = shape.to_vec();
        s[dim] = end - start;
        assert_eq!(out.shape(), &s[..]);
        assert_close(
            &format!("slice dim {dim} {start}..{end}"),
            &out,
            &slice_ref(&x, &shape, dim, start, end),
            0.0,
            0.0,
        );
    }
    let sizes = [10usize, 0, 26, 1];
    let parts = split(&t, 1, &sizes).unwrap();
    assert_eq!(parts.len(), 4);
    let mut off = 0;
    for (p, &len) in parts.iter().zip(&sizes) {
        assert_close(
            "split",
            p,
            &slice_ref(&x, &shape, 1, off, off + len),
            0.0,
            0.0,
        );
        off += len;
    }
    let chunks = t.chunk(3, 2).unwrap();
    for (k, c) in chunks.iter().enumerate() {
        assert_eq!(c.shape(), &[4, 37, 3]);
        assert_close(
            "chunk",
            c,
            &slice_ref(&x, &shape, 2, 3 * k, 3 * k + 3),
            0.0,
            0.0,
        );
    }
    assert_eq!(chunk(&t, 1, 0).unwrap().len(), 1);
    let e = chunk(&t, 2, 1).unwrap_err().to_string();
    assert!(e.contains("chunk") && e.contains("[4, 37, 9]"), "{e}");
    assert!(chunk(&t, 0, 0).is_err());
}

fn permute_ref(x: &[f32], shape: &[usize], perm: &[usize]) -> Vec<f64> {
    let out_shape: Vec<usize> = perm.iter().map(|&d| shape[d]).collect();
    (0..numel(&out_shape))
        .map(|lin| {
            let oc = coords(&out_shape, lin);
            let mut ic = vec![0; shape.len()];
            for (i, &d) in perm.iter().enumerate() {
                ic[d] = oc[i];
            }
            x[index(shape, &ic)] as f64
        })
        .collect()
}

#[test]
fn permute_ranks_two_to_six() {
    let mut rng = Rng::new(12);
    for r in 2..=6usize {
        let shape: Vec<usize> = (0..r)
            .map(|_| rng.range(1, if r > 4 { 4 } else { 9 }))
            .collect();
        let x = rng.vec(numel(&shape), -1.0, 1.0);
        let t = upload(&shape, &x);
        let identity: Vec<usize> = (0..r).collect();
        let reversal: Vec<usize> = (0..r).rev().collect();
        let mut shuffled = identity.clone();
        for i in (1..r).rev() {
            shuffled.swap(i, rng.range(0, i));
        }
        // Keeps dims 1 and 2 adjacent, which the launcher merges into one.
        let mut merged: Vec<usize> = vec![1, 2, 0];
        merged.extend(3..r);
        let mut perms = vec![identity, reversal, shuffled];
        if r >= 3 {
            perms.push(merged);
        }
        for perm in perms {
            let out = permute(&t, &perm).unwrap();
            let want: Vec<usize> = perm.iter().map(|&d| shape[d]).collect();
            assert_eq!(out.shape(), &want[..]);
            assert_close(
                &format!("permute {shape:?} by {perm:?}"),
                &out,
                &permute_ref(&x, &shape, &perm),
                0.0,
                0.0,
            );
        }
    }
    // Size-1 dims between merged dims, and a bf16 input.
    let shape = [3usize, 1, 5, 1, 7];
    let x: Vec<f32> = Rng::new(13)
        .vec(numel(&shape), -1.0, 1.0)
        .iter()
        .map(|&v| bf16::from_f32(v).to_f32())
        .collect();
    let b: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
    let t = Tensor::from_bf16(gpu(), &shape, &b).unwrap();
    let perm = [3, 2, 4, 1, 0];
    assert_close(
        "permute bf16",
        &t.permute(&perm).unwrap(),
        &permute_ref(&x, &shape, &perm),
        0.0,
        0.0,
    );
    let out = t.transpose(0, 4).unwrap();
    assert_eq!(out.shape(), &[7, 1, 5, 1, 3]);
    assert_close(
        "transpose",
        &out,
        &permute_ref(&x, &shape, &[4, 1, 2, 3, 0]),
        0.0,
        0.0,
    );
}

#[test]
fn upsample_nearest_doubles_h_and_w() {
    let shape = [2usize, 3, 5, 7];
    let x = Rng::new(14).vec(numel(&shape), -1.0, 1.0);
    let out = upload(&shape, &x).upsample_nearest2x().unwrap();
    let os = [2usize, 3, 10, 14];
    assert_eq!(out.shape(), &os);
    let expected: Vec<f64> = (0..numel(&os))
        .map(|lin| {
            let c = coords(&os, lin);
            x[index(&shape, &[c[0], c[1], c[2] / 2, c[3] / 2])] as f64
        })
        .collect();
    assert_close("upsample", &out, &expected, 0.0, 0.0);
}

/// F.interpolate(mode="bilinear", align_corners=True) in f64.
fn bilinear_ref(x: &[f32], shape: &[usize], oh: usize, ow: usize) -> Vec<f64> {
    let (p, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
    let scale = |i: usize, o: usize| {
        if o > 1 {
            (i - 1) as f64 / (o - 1) as f64
        } else {
            0.0
        }
    };
    let axis = |o: usize, i: usize, n: usize| {
        let s = scale(n, o) * i as f64;
        let i0 = (s.floor() as usize).min(n - 1);
        (i0, (i0 + 1).min(n - 1), s - i0 as f64)
    };
    let mut out = Vec::new();
    for plane in 0..p {
        for y in 0..oh {
            let (y0, y1, ly) = axis(oh, y, h);
            for xo in 0..ow {
                let (x0, x1, lx) = axis(ow, xo, w);
                let v = |yy: usize, xx: usize| x[(plane * h + yy) * w + xx] as f64;
                out.push(
                    (1.0 - ly) * ((1.0 - lx) * v(y0, x0) + lx * v(y0, x1))
                        + ly * ((1.0 - lx) * v(y1, x0) + lx * v(y1, x1)),
                );
            }
        }
    }
    out
}

#[test]
fn bilinear_resize_align_corners() {
    let mut rng = Rng::new(15);
    let cases: [([usize; 4], usize, usize); 7] = [
        ([2, 3, 8, 8], 17, 13),  // up, odd
        ([1, 2, 33, 21], 10, 7), // down
        ([1, 3, 9, 11], 9, 11),  // same size
        ([2, 2, 5, 6], 1, 1),    // to 1×1: the top-left pixel
        ([1, 2, 1, 1], 6, 5),    // from 1×1: a constant
        ([1, 1, 1, 7], 4, 3),    // one row
        ([1, 1, 40, 3], 64, 1),  // one output column
    ];
    for (shape, oh, ow) in cases {
        let x = rng.vec(numel(&shape), -1.0, 1.0);
        let out = upload(&shape, &x).resize_bilinear(oh, ow).unwrap();
        assert_eq!(out.shape(), &[shape[0], shape[1], oh, ow]);
        // Sources are f32 products scale·i: off by ≤ 6e-8·in ≤ 3e-6 pixels here, times slopes ≤ 2,
        // plus a few f32 roundings of values ≤ 1 in the blend (~3e-7).
        assert_close(
            &format!("resize {shape:?} to {oh}×{ow}"),
            &out,
            &bilinear_ref(&x, &shape, oh, ow),
            1e-5,
            0.0,
        );
    }
}

#[test]
fn avg_pool_floors_odd_sizes() {
    let mut rng = Rng::new(16);
    for shape in [[2usize, 3, 7, 9], [1, 2, 8, 6], [1, 1, 3, 2]] {
        let x = rng.vec(numel(&shape), -4.0, 4.0);
        let out = upload(&shape, &x).avg_pool2x2().unwrap();
        let os = [shape[0], shape[1], shape[2] / 2, shape[3] / 2];
        assert_eq!(out.shape(), &os);
        let expected: Vec<f64> = (0..numel(&os))
            .map(|lin| {
                let c = coords(&os, lin);
                let v = |dy: usize, dx: usize| {
                    x[index(&shape, &[c[0], c[1], 2 * c[2] + dy, 2 * c[3] + dx])] as f64
                };
                (v(0, 0) + v(0, 1) + v(1, 0) + v(1, 1)) / 4.0
            })
            .collect();
        // Three f32 additions of values ≤ 4 (sums ≤ 16, ulp 2e-6), the /4 exact.
        assert_close(&format!("avg_pool {shape:?}"), &out, &expected, 4e-6, 0.0);
    }
}

#[test]
fn max_pool_floors_odd_sizes_and_propagates_nan() {
    let mut rng = Rng::new(17);
    for shape in [
        [2usize, 3, 7, 9],
        [1, 2, 8, 6],
        [1, 1, 3, 2],
        [1, 5, 33, 17],
    ] {
        let x = rng.vec(numel(&shape), -4.0, 4.0);
        let out = upload(&shape, &x).max_pool2x2().unwrap();
        let os = [shape[0], shape[1], shape[2] / 2, shape[3] / 2];
        assert_eq!(out.shape(), &os);
        let expected: Vec<f64> = (0..numel(&os))
            .map(|lin| {
                let c = coords(&os, lin);
                let v = |dy: usize, dx: usize| {
                    x[index(&shape, &[c[0], c[1], 2 * c[2] + dy, 2 * c[3] + dx])] as f64
                };
                v(0, 0).max(v(0, 1)).max(v(1, 0)).max(v(1, 1))
            })
            .collect();
        // A maximum is one of its inputs: exact.
        assert_close(&format!("max_pool {shape:?}"), &out, &expected, 0.0, 0.0);
    }
    // A NaN anywhere in a window (each of the four places) gives NaN, as PyTorch; other windows
    // are unaffected.
    for k in 0..4 {
        let mut x = vec![1.0f32; 16];
        x[[0, 1, 4, 5][k]] = f32::NAN;
        let out = upload(&[1, 1, 4, 4], &x)
            .max_pool2x2()
            .unwrap()
            .to_vec()
            .unwrap();
        assert!(out[0].is_nan(), "NaN at window place {k}: {out:?}");
        assert_eq!(&out[1..], &[1.0, 1.0, 1.0]);
    }
}

#[test]
fn max_pool_refuses_small_inputs_and_tracked_inputs() {
    let small = upload(&[1, 1, 1, 4], &[0.0; 4]).max_pool2x2().unwrap_err();
    assert!(small.to_string().contains("max_pool2x2"), "{small}");
    let tracked = upload(&[1, 1, 2, 2], &[0.0; 4]).requires_grad();
    let e = tracked.max_pool2x2().unwrap_err();
    assert!(e.to_string().contains("backward"), "{e}");
    let ok = iterinv_engine::grad::no_grad(|| tracked.max_pool2x2());
    assert_eq!(ok.unwrap().to_vec().unwrap(), vec![0.0]);
}

pub(crate) fn gather_ref(table: &[f64], d: usize, ids: &[i32]) -> Vec<f64> {
    let v = (table.len() / d) as i32;
    ids.iter()
        .flat_map(|&id| {
            (0..d).map(move |c| {
                if (0..v).contains(&id) {
                    table[id as usize * d + c]
                } else {
                    0.0
                }
            })
        })
        .collect()
}

#[test]
fn embedding_gathers_f32_f16_bf16_rows_and_zeroes_out_of_range_ids() {
    let mut rng = Rng::new(17);
    let (v, d) = (50usize, 13usize);
    let vals = rng.vec(v * d, -3.0, 3.0);
    let ids: Vec<i32> = (0..2 * 9)
        .map(|i| match i {
            3 => -1,
            7 => v as i32,
            11 => i32::MAX,
            12 => i32::MIN,
            _ => rng.range(0, v - 1) as i32,
        })
        .collect();
    let ids_t = Tensor::from_i32(gpu(), &[2, 9], &ids).unwrap();
    let h: Vec<f16> = vals.iter().map(|&x| f16::from_f32(x)).collect();
    let b: Vec<bf16> = vals.iter().map(|&x| bf16::from_f32(x)).collect();
    let tables = [
        ("f32", upload(&[v, d], &vals), f64s(&vals)),
        (
            "f16",
            Tensor::from_f16(gpu(), &[v, d], &h).unwrap(),
            h.iter().map(|x| x.to_f64()).collect(),
        ),
        (
            "bf16",
            Tensor::from_bf16(gpu(), &[v, d], &b).unwrap(),
            b.iter().map(|x| x.to_f64()).collect(),
        ),
    ];
    for (name, table, exact) in tables {
        let out = table.embedding(&ids_t).unwrap();
        assert_eq!(out.shape(), &[2, 9, d]);
        assert_close(
            &format!("embedding {name}"),
            &out,
            &gather_ref(&exact, d, &ids),
            0.0,
            0.0,
        );
    }
}

#[test]
fn embedding_reads_a_chunked_table() {
    let small = Gpu::with_options(GpuOptions {
        poison: true,
        max_binding_size: Some(64 * 1024),
        ..Default::default()
    })
    .unwrap();
    let (v, d) = (1000usize, 40usize);
    let vals = Rng::new(18).vec(v * d, -1.0, 1.0);
    let table = Tensor::from_f32(&small, &[v, d], &vals).unwrap();
    assert!(table.is_chunked(), "160 KB over a 64 KiB binding limit");
    // 409 rows per chunk: ids on every chunk's first and last rows, and out of range.
    let ids: Vec<i32> = vec![0, 408, 409, 817, 818, 999, -5, 1000, 500, 3, 999, 0, 650];
    let ids_t = Tensor::from_i32(&small, &[ids.len()], &ids).unwrap();
    let out = table.embedding(&ids_t).unwrap();
    assert_close(
        "chunked embedding",
        &out,
        &gather_ref(&f64s(&vals), d, &ids),
        0.0,
        0.0,
    );
    // f16 chunks: an odd row width puts rows across word boundaries within each chunk.
    let (v, d) = (3000usize, 27usize);
    let h: Vec<f16> = Rng::new(19)
        .vec(v * d, -1.0, 1.0)
        .iter()
        .map(|&x| f16::from_f32(x))
        .collect();
    let table = Tensor::from_f16(&small, &[v, d], &h).unwrap();
    assert!(table.is_chunked());
    let ids: Vec<i32> = (0..40i32).map(|i| i * 77 % 3001 - 1).collect();
    let ids_t = Tensor::from_i32(&small, &[ids.len()], &ids).unwrap();
    let exact: Vec<f64> = h.iter().map(|x| x.to_f64()).collect();
    assert_close(
        "chunked f16 embedding",
        &table.embedding(&ids_t).unwrap(),
        &gather_ref(&exact, d, &ids),
        0.0,
        0.0,
    );
}

#[test]
fn bad_arguments_are_errors_naming_op_and_shapes() {
    let a = upload(&[2, 3], &[0.0; 6]);
    let b = upload(&[2, 4], &[0.0; 8]);
    let c = upload(&[2, 3, 1], &[0.0; 6]);
    let ids = Tensor::from_i32(gpu(), &[2], &[0, 1]).unwrap();
    let err = |r: Result<Tensor, iterinv_engine::Error>| r.unwrap_err().to_string();
    let e = err(concat(&[&a, &b], 0));
    assert!(
        e.contains("concat") && e.contains("[2, 4]") && e.contains("[2, 3]"),
        "{e}"
    );
    assert!(concat(&[&a, &b], 1).is_ok());
    assert!(err(concat(&[&a, &c], 1)).contains("[2, 3, 1]"));
    assert!(err(concat(&[&a], 2)).contains("dim 2"));
    assert!(err(concat(&[], 0)).contains("concat"));
    assert!(err(concat(&[&a, &ids], 0)).contains("i32"));
    let e = err(slice(&a, 1, 2, 4));
    assert!(
        e.contains("slice") && e.contains("2..4") && e.contains("[2, 3]"),
        "{e}"
    );
    assert!(slice(&a, 1, 2, 1).is_err());
    assert!(slice(&a, 2, 0, 1).is_err());
    let e = split(&a, 1, &[1, 1]).unwrap_err().to_string();
    assert!(e.contains("split") && e.contains("[1, 1]"), "{e}");
    for perm in [&[0usize, 0][..], &[0], &[0, 2], &[1, 0, 2]] {
        let e = err(permute(&a, perm));
        assert!(
            e.contains("permute") && e.contains("[2, 3]"),
            "{perm:?}: {e}"
        );
    }
    let nine = upload(&[1; 9], &[1.0]);
    assert!(err(nine.permute(&[8, 7, 6, 5, 4, 3, 2, 1, 0])).contains("rank 9"));
    assert!(err(a.transpose(0, 2)).contains("transpose"));
    for (name, r) in [
        ("upsample_nearest2x", a.upsample_nearest2x()),
        ("resize_bilinear", a.resize_bilinear(4, 4)),
        ("avg_pool2x2", a.avg_pool2x2()),
    ] {
        let e = err(r);
        assert!(e.contains(name) && e.contains("[2, 3]"), "{e}");
    }
    let img = upload(&[1, 1, 1, 3], &[0.0; 3]);
    assert!(err(img.avg_pool2x2()).contains("avg_pool2x2"));
    assert!(err(img.resize_bilinear(0, 2)).contains("resize_bilinear"));
    let e = err(ids.reshape(&[2, 1]).unwrap().embedding(&ids));
    assert!(e.contains("embedding") && e.contains("I32"), "{e}");
    let e = err(a.embedding(&a));
    assert!(e.contains("embedding") && e.contains("i32"), "{e}");
    assert!(err(upload(&[6], &[0.0; 6]).embedding(&ids)).contains("[6]"));
}

#[test]
fn a_reshape_that_grows_the_first_dimension_reads_back_whole() {
    // Regression: readback used the row count of the shape the buffer was allocated with.
    let x = crate::common::upload(&[2, 3, 4], &(0..24).map(|v| v as f32).collect::<Vec<_>>());
    let y = x.slice(0, 1, 2).unwrap().reshape(&[3, 4]).unwrap();
    assert_eq!(
        y.to_vec().unwrap(),
        (12..24).map(|v| v as f32).collect::<Vec<_>>()
    );
}
