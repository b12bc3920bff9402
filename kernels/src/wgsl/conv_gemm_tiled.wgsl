// GPU tile loop shared by the conv GEMMs (forward, input and weight gradients):
// out[m, n] = Σ_{k in [p.kb, p.ke)} A[m, k]·B[k, n] for m < p.gm, n < p.gn; a 64×64 output tile per
// workgroup of 16×16 invocations, each 4 rows × 4 columns in registers; K advances 16 at a time
// through workgroup memory. Both operands are gathered on the fly by the including kernel:
// `a_at(m, k)`, `col_of(n) -> Col` (a column's coordinates, decoded once per invocation),
// `b_at(col, k)` (zero in the padding) and `epilogue(m, n, v)`. CHECK_BOUNDS = false drops the
// M/N/K checks when the launcher has verified that M, N and the K range divide the tiles. Both
// operands pass through `operand` as they are staged (rounded to f16 under ROUND_F16; the products
// accumulate in f32 either way).
const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

// [k][m/4] and [k][n/4]: one vec4 read per operand per k in the inner loop.
var<workgroup> a_tile: array<vec4<f32>, 256>;
var<workgroup> b_tile: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let mtiles = (p.gm + TM - 1u) / TM;
    let g = group_index(wid, nwg);
    let m0 = (g % mtiles) * TM;
    let n0 = (g / mtiles) * TN;

    // A loads: consecutive invocations read consecutive k of one row.
    let ka = li % TK;
    let ma = li / TK;
    // B loads: consecutive invocations read consecutive n; each keeps one column for the whole K
    // loop, so its coordinates are decoded once (clamped: a column past N is never loaded).
    let nb = li % TN;
    let kb = li / TN;
    let n = n0 + nb;
    let n_ok = n < p.gn;
    let col = col_of(min(n, p.gn - 1u));

    var acc: array<vec4<f32>, 4>;
    for (var k0 = p.kb; k0 < p.ke; k0 = k0 + TK) {
        let k = k0 + ka;
        for (var i = 0u; i < 4u; i = i + 1u) {
            let mm = ma + 16u * i;
            let m = m0 + mm;
            var v = 0.0;
            if (!CHECK_BOUNDS || (m < p.gm && k < p.ke)) {
                v = operand(a_at(m, k));
            }
            a_tile[ka * 16u + mm / 4u][mm % 4u] = v;
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            let kk = kb + 4u * j;
            let kg = k0 + kk;
            var v = 0.0;
            if (!CHECK_BOUNDS || (n_ok && kg < p.ke)) {
                v = operand(b_at(col, kg));
            }
            b_tile[kk * 16u + nb / 4u][nb % 4u] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk = kk + 1u) {
            let a = a_tile[kk * 16u + lid.y];
            let b = b_tile[kk * 16u + lid.x];
            acc[0] = fma(a, vec4(b.x), acc[0]);
            acc[1] = fma(a, vec4(b.y), acc[1]);
            acc[2] = fma(a, vec4(b.z), acc[2]);
            acc[3] = fma(a, vec4(b.w), acc[3]);
        }
        workgroupBarrier();
    }

    for (var j = 0u; j < 4u; j = j + 1u) {
        let nc = n0 + lid.x * 4u + j;
        if (!CHECK_BOUNDS || nc < p.gn) {
            for (var i = 0u; i < 4u; i = i + 1u) {
                let m = m0 + lid.y * 4u + i;
                if (!CHECK_BOUNDS || m < p.gm) {
                    epilogue(m, nc, acc[j][i]);
                }
            }
        }
    }
}
