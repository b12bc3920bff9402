//! The tape's semantics: pruning, accumulation, release of saved tensors, misuse errors.

use iterinv_engine::grad::{backward, grad, no_grad};
use iterinv_engine::Tensor;

use crate::common::{gpu, Rng};

fn t(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::from_f32(gpu(), shape, &rng.vec(shape.iter().product(), -1.0, 1.0)).unwrap()
}

#[test]
fn asking_for_the_input_gradient_computes_no_weight_gradient() {
    // A device of its own: other tests' dispatches on the shared one would be counted too.
    let g = &iterinv_engine::Gpu::new().unwrap();
    let on = |x: &Tensor| Tensor::from_f32(g, x.shape(), &x.to_vec().unwrap()).unwrap();
    let x = on(&t(&[4, 8], 1)).requires_grad();
    let w = on(&t(&[6, 8], 2)).requires_grad();
    let y = x.linear(&w, None).unwrap().silu().unwrap();
    let cot = on(&t(&[4, 6], 3));
    let before = g.kernel_dispatches("matmul_direct") + g.kernel_dispatches("matmul_tiled");
    let dx = grad(&[&y], &[&cot], &[&x]).unwrap();
    let after = g.kernel_dispatches("matmul_direct") + g.kernel_dispatches("matmul_tiled");
    assert_eq!(dx[0].shape(), &[4, 8]);
    // Exactly one matmul in the backward pass: dX = dY·W. dW = dYᵀ·X is pruned.
    assert_eq!(
        after - before,
        1,
        "backward launched {} matmuls",
        after - before
    );

    // Asking for both computes both.
    let y = x.linear(&w, None).unwrap().silu().unwrap();
    let before = g.kernel_dispatches("matmul_direct") + g.kernel_dispatches("matmul_tiled");
    grad(&[&y], &[&cot], &[&x, &w]).unwrap();
    let after = g.kernel_dispatches("matmul_direct") + g.kernel_dispatches("matmul_tiled");
    assert_eq!(after - before, 2);
}

#[test]
fn gradients_accumulate_over_every_use() {
    // y = x·x + 3x  =>  dy/dx = 2x + 3
    let xs = [0.5f32, -1.0, 2.0];
    let x = Tensor::from_f32(gpu(), &[3], &xs).unwrap().requires_grad();
    let y = x.mul(&x).unwrap().add(&x.mul_scalar(3.0).unwrap()).unwrap();
    let ones = Tensor::full(gpu(), &[3], 1.0).unwrap();
    let d = grad(&[&y], &[&ones], &[&x]).unwrap()[0].to_vec().unwrap();
    for (dv, xv) in d.iter().zip(xs) {
        assert!((dv - (2.0 * xv + 3.0)).abs() < 1e-6, "{d:?}");
    }
}

#[test]
fn unused_wrt_gets_zeros_and_untracked_wrt_is_an_error() {
    let x = t(&[2, 3], 4).requires_grad();
    let unused = t(&[5], 5).requires_grad();
    let y = x.exp().unwrap();
    let cot = t(&[2, 3], 6);
    let gr = grad(&[&y], &[&cot], &[&unused]).unwrap();
    assert_eq!(gr[0].to_vec().unwrap(), vec![0.0; 5]);
    let plain = t(&[2], 7);
    // An output that depends on nothing tracked is an error, not silent zeros.
    assert!(backward(&t(&[1], 14), &[&x]).is_err());
    let y = x.exp().unwrap();
    let err = grad(&[&y], &[&cot], &[&plain]).unwrap_err().to_string();
    assert!(err.contains("requires_grad"), "{err}");
    let wrong = t(&[3, 2], 8);
    assert!(grad(&[&y], &[&wrong], &[&x]).is_err());
}

#[test]
fn a_graph_is_differentiated_once_and_frees_its_saved_tensors() {
    let g = gpu();
    let x = t(&[64, 64], 9).requires_grad();
    let w = t(&[64, 64], 10);
    let y = x.matmul(&w).unwrap().gelu().unwrap();
    let cot = t(&[64, 64], 11);
    grad(&[&y], &[&cot], &[&x]).unwrap();
    let err = grad(&[&y], &[&cot], &[&x]).unwrap_err().to_string();
    assert!(err.contains("already differentiated"), "{err}");
    // Rebuilding the graph works, and the pool serves it without growing.
    g.synchronize().unwrap();
    let held = g.pool_stats().bytes_held;
    for _ in 0..3 {
        let y = x.matmul(&w).unwrap().gelu().unwrap();
        grad(&[&y], &[&cot], &[&x])
            .unwrap()
            .remove(0)
            .to_vec()
            .unwrap();
    }
    assert!(
        g.pool_stats().bytes_held <= held + (1 << 20),
        "the pool grew across identical steps"
    );
}

#[test]
fn no_grad_records_nothing() {
    let x = t(&[3], 12).requires_grad();
    let y = no_grad(|| x.exp().unwrap());
    assert!(!y.is_tracked());
    assert!(x.exp().unwrap().is_tracked());
    assert!(!t(&[3], 13).exp().unwrap().is_tracked());
}

#[test]
fn a_checkpointed_block_gives_the_same_gradients() {
    let x = t(&[8, 16], 20).requires_grad();
    let w = t(&[16, 16], 21);
    let block = |x: &Tensor, w: &Tensor| x.linear(w, None)?.gelu()?.mul(x)?.silu();
    let cot = t(&[8, 16], 22);
    let y = block(&x, &w).unwrap();
    let plain = grad(&[&y], &[&cot], &[&x])
        .unwrap()
        .remove(0)
        .to_vec()
        .unwrap();
    let wc = w.clone();
    let y = iterinv_engine::grad::checkpoint(&[&x], move |xs| block(&xs[0], &wc)).unwrap();
    let recomputed = grad(&[&y], &[&cot], &[&x])
        .unwrap()
        .remove(0)
        .to_vec()
        .unwrap();
    // The same kernels on the same inputs: bit-identical.
    assert_eq!(plain, recomputed);
}
