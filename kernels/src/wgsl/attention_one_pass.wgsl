// Stands in for the `ml` output in the one-dispatch kernels (p.first = p.last = 1, so it is never
// read or written): they then bind 8 storage buffers, WebGPU's default limit per stage.
var<private> ml: array<f32, 2>;
