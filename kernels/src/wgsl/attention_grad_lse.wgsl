// Stands in for the dq output in the statistics-only kernels (HAS_DQ = false: never touched), for
// a backward that needs dK or dV but not dQ.
var<private> dq: array<f32, 4>;
