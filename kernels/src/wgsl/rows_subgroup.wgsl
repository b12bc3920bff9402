// The row-reduction template on subgroup operations (rows_tree.wgsl's interface), for devices
// with `Features::SUBGROUP` (naga takes subgroup operations without an `enable`): each subgroup
// reduces in registers, its first invocation leaves the subgroup's result in workgroup memory,
// and after one barrier every subgroup reduces those partials itself: two barriers per reduction
// instead of log2(WG) + 1, and no shared-memory tree.

var<workgroup> red: array<vec2<f32>, WG>;
var<private> sg_lane: u32;
var<private> sg_size: u32;
var<private> sg_id: u32;
var<private> sg_count: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) size: u32,
        @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) count: u32) {
    sg_lane = lane;
    sg_size = size;
    sg_id = sg;
    sg_count = count;
    run(wid, nwg, lid);
}

// Sum over the workgroup; every invocation gets the total.
fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    let s = subgroupAdd(v);
    if (sg_lane == 0u) {
        red[sg_id] = s;
    }
    workgroupBarrier();
    // Each lane adds every sg_size-th partial (a single one unless the subgroups are narrow).
    var t = vec2<f32>(0.0);
    for (var i = sg_lane; i < sg_count; i = i + sg_size) {
        t = t + red[i];
    }
    let r = subgroupAdd(t);
    // Nobody may overwrite the partials before everyone has read them.
    workgroupBarrier();
    return r;
}

// Merge of online softmax pairs (m, s = Σ exp(x − m)) over the workgroup (see rows_tree.wgsl).
fn workgroup_max_sum(lid: u32, m: f32, s: f32) -> vec2<f32> {
    let mm = subgroupMax(m);
    let ss = subgroupAdd(s * exp(m - mm));
    if (sg_lane == 0u) {
        red[sg_id] = vec2<f32>(mm, ss);
    }
    workgroupBarrier();
    var a = vec2<f32>(-3.40282347e38, 0.0);
    for (var i = sg_lane; i < sg_count; i = i + sg_size) {
        let b = red[i];
        let top = max(a.x, b.x);
        a = vec2<f32>(top, a.y * exp(a.x - top) + b.y * exp(b.x - top));
    }
    let mt = subgroupMax(a.x);
    let st = subgroupAdd(a.y * exp(a.x - mt));
    workgroupBarrier();
    return vec2<f32>(mt, st);
}
