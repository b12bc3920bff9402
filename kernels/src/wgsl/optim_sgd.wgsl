// One SGD step on one parameter tensor, in place, as torch.optim.SGD:
//   d = g + wd·param                              (only when wd ≠ 0)
//   with momentum: buf = d on the first step, else buf·momentum + (1 − dampening)·d;
//                  d = d + momentum·buf (Nesterov) or d = buf
//   param += −lr·d
struct Params {
    n: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    one_minus_dampening: f32,
    first: u32,
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * WG + lid;
    if (i >= p.n) {
        return;
    }
    let x = param[i];
    var d = ld_g(i);
    if (p.weight_decay != 0.0) {
        d = d + p.weight_decay * x;
    }
    if (HAS_MOMENTUM) {
        var b = d;
        // The first step's buffer is the gradient itself; the old contents (uninitialised) are
        // not read, so no NaN poison can leak in.
        if (p.first == 0u) {
            b = buf[i] * p.momentum + p.one_minus_dampening * d;
        }
        buf[i] = b;
        if (NESTEROV) {
            d = d + p.momentum * b;
        } else {
            d = b;
        }
    }
    param[i] = x - p.lr * d;
}
