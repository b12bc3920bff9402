// One Adam step on one parameter tensor, in place, in the order of operations of PyTorch's
// `_single_tensor_adam` / `_multi_tensor_adam` so the f32 rounding matches it closely:
//   g  += wd·param                               (only when wd ≠ 0, as PyTorch skips it)
//   m   = lerp(m, g, 1 − β1)                     (torch.lerp's two-sided formula)
//   v   = v·β2 + (1 − β2)·g·g
//   param += −step_size · m / (sqrt(v) / sqrt(bc2) + eps)
// step_size = lr / (1 − β1^t) and sqrt(bc2) = sqrt(1 − β2^t) come from the host, computed in f64.
struct Params {
    n: u32,
    weight_decay: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * WG + lid;
    if (i >= p.n) {
        return;
    }
    let x = param[i];
    var g = ld_g(i);
    if (p.weight_decay != 0.0) {
        g = g + p.weight_decay * x;
    }
    let w = p.one_minus_beta1;
    let m0 = exp_avg[i];
    // torch.lerp: start + w·(end − start) for |w| < 0.5, else end − (end − start)·(1 − w).
    let m = select(g - (g - m0) * (1.0 - w), m0 + w * (g - m0), abs(w) < 0.5);
    let v = exp_avg_sq[i] * p.beta2 + p.one_minus_beta2 * g * g;
    let denom = sqrt(v) / p.bc2_sqrt + p.eps;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = x - p.step_size * (m / denom);
}
