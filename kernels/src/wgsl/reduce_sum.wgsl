// Sum over the middle axis of x viewed as [outer, r, inner], scaled: out[o, s, c] =
// scale · Σ x[o, j, c] over j in segment s (segments of seg_len, `segs` of them; the host sums the
// segments in a second launch when it splits a long axis for parallelism).
// A workgroup owns TX consecutive columns c of one (o, s); its TY = WG/TX lanes per column stride
// over j and meet in a workgroup tree. TX = 1 is the plain row reduction (inner = 1); TX > 1 keeps
// the loads of neighbouring lanes contiguous when the reduced axis is not the last one.
// Loop cap (lavapipe ends every loop of an invocation after 65535 iterations in all): an invocation
// runs ⌈seg_len/TY⌉ + log2(TY) iterations. ops::reduce makes that at most E/65536 + 10 for a
// tensor of E elements (a workgroup with a full-length segment has ≥ 511 siblings sharing E, and
// segments are cut to 512 workgroups' worth), so under 16,400 even for 2^30 elements (4 GiB); the
// IF stage II per-sample sum of 3·256² elements takes 16 + 8.
struct Params { outer: u32, r: u32, inner: u32, tiles: u32, segs: u32, seg_len: u32, scale: f32 }

const TY: u32 = WG / TX;

var<workgroup> acc: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    let tile = g % p.tiles;
    let os = g / p.tiles;
    let seg = os % p.segs;
    let o = os / p.segs;
    let tx = lid % TX;
    let ty = lid / TX;
    let c = tile * TX + tx;
    // Groups past the end of the grid still reach every barrier; they just load and store nothing.
    let live = o < p.outer && c < p.inner;
    var s = 0.0;
    if (live) {
        let end = min(p.r, (seg + 1u) * p.seg_len);
        for (var j = seg * p.seg_len + ty; j < end; j = j + TY) {
            s = s + ld_x((o * p.r + j) * p.inner + c);
        }
    }
    acc[lid] = s;
    workgroupBarrier();
    for (var st = TY / 2u; st > 0u; st = st / 2u) {
        if (ty < st) {
            acc[lid] = acc[lid] + acc[lid + st * TX];
        }
        workgroupBarrier();
    }
    if (live && ty == 0u) {
        out[(o * p.segs + seg) * p.inner + c] = acc[tx] * p.scale;
    }
}
