use crate::Kernel;

pub static KERNELS: &[&Kernel] = &[];
