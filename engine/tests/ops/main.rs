//! Every forward op against a CPU f64 reference, on random shapes that do not divide the kernels'
//! tiles, with outputs poisoned (NaN) before the kernels run and guard words checked after them.

mod common;

mod attention;
mod conv;
mod elementwise;
mod matmul;
mod norm;
mod reduce;
mod shape;
mod softmax;
