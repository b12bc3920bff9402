// Cooperative matrices in hardware (a prelude of gemm_coop.wgsl, after one of the
// coop_type_*.wgsl headers that name the types): the operations map one to one onto the
// adapter's cooperative-matrix instructions, and every subgroup runs them in uniform control
// flow. Staged blocks are row-major, hence the `T` (row-major) loads and stores.

fn coop_setup(lane: u32) {}

fn mat_zero() -> MatC {
    return MatC();
}

fn load_mat_a(off: u32, stride: u32) -> MatA {
    return coopLoadT<MatA>(&a_sh[off], stride);
}

fn load_mat_b(off: u32, stride: u32) -> MatB {
    return coopLoadT<MatB>(&b_sh[off], stride);
}

fn mma(a: MatA, b: MatB, c: MatC) -> MatC {
    return coopMultiplyAdd(a, b, c);
}

fn store_mat_c(c: MatC, off: u32, stride: u32) {
    coopStoreT(c, &c_sh[off], stride);
}
