// The row-reduction template's portable half: the entry point and workgroup reductions as trees
// in workgroup memory (log2(WG) barriered steps; WG a power of two). A kernel built on the
// template writes `fn run(wid, nwg, lid)` and reduces through `workgroup_sum` and
// `workgroup_max_sum`; rows_subgroup.wgsl is the same interface on subgroup operations.

var<workgroup> red: array<vec2<f32>, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    run(wid, nwg, lid);
}

// Sum over the workgroup; every invocation gets the total.
fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    // Nobody may overwrite red[0] before everyone has read it.
    workgroupBarrier();
    return r;
}

// Merge of online softmax pairs (m, s = Σ exp(x − m)) over the workgroup: (max, sum of exp(x −
// max)) for every invocation. m = −FLT_MAX with s = 0 is the identity (never NaN).
fn workgroup_max_sum(lid: u32, m: f32, s: f32) -> vec2<f32> {
    var a = vec2<f32>(m, s);
    red[lid] = a;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w >> 1u) {
        if (lid < w) {
            a = merge_max_sum(a, red[lid + w]);
            red[lid] = a;
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn merge_max_sum(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let mm = max(a.x, b.x);
    return vec2<f32>(mm, a.y * exp(a.x - mm) + b.y * exp(b.x - mm));
}
