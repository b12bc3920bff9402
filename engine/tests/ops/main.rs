//! Every forward op against a CPU f64 reference, on random shapes that do not divide the kernels'
//! tiles, with outputs poisoned (NaN) before the kernels run and guard words checked after them.

mod common;

mod attention;
mod attention_blocked;
mod attention_coop;
mod conv;
mod conv_coop;
mod elementwise;
mod grad_attention;
mod grad_conv;
mod grad_elementwise;
mod grad_matmul;
mod grad_norm;
mod grad_reduce;
mod grad_shape;
mod grad_tape;
mod matmul;
mod matmul_coop;
mod matmul_tiled;
mod norm;
mod optim;
mod precision_f16;
mod reduce;
mod resample;
mod residual;
mod shape;
mod softmax;
mod texture;
