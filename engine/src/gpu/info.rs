//! `iterinv info`'s account of a device: backend, adapter, driver, the limits and features iterinv
//! uses, and which kernels carry the matrix products at each precision.

use super::GpuInfo;
use crate::precision::{self, Precision};

impl std::fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = &self.adapter;
        let l = &self.limits;
        let c = &self.caps;
        let mib = |b: u64| format!("{} MiB", b / (1 << 20));
        writeln!(f, "backend:        {:?}", a.backend)?;
        writeln!(
            f,
            "adapter:        {} ({:?}, vendor 0x{:04x}, device 0x{:04x})",
            a.name, a.device_type, a.vendor, a.device
        )?;
        writeln!(f, "driver:         {} {}", a.driver, a.driver_info)?;
        writeln!(
            f,
            "device:         {}",
            if self.adopted {
                "adopted from the host application"
            } else {
                "created by iterinv"
            }
        )?;
        writeln!(f, "limits:")?;
        writeln!(
            f,
            "  max_storage_buffer_binding_size   {}",
            mib(l.max_storage_buffer_binding_size)
        )?;
        writeln!(
            f,
            "  max_buffer_size                   {}",
            mib(l.max_buffer_size)
        )?;
        writeln!(
            f,
            "  max_compute_workgroup_storage     {} KiB",
            l.max_compute_workgroup_storage_size / 1024
        )?;
        writeln!(
            f,
            "  max_compute_invocations_per_wg    {}",
            l.max_compute_invocations_per_workgroup
        )?;
        writeln!(
            f,
            "  max_compute_workgroups_per_dim    {}",
            l.max_compute_workgroups_per_dimension
        )?;
        writeln!(
            f,
            "  max_storage_buffers_per_stage     {}",
            l.max_storage_buffers_per_shader_stage
        )?;
        writeln!(f, "features:")?;
        writeln!(f, "  shader-f16        {}", c.shader_f16)?;
        writeln!(f, "  subgroups         {}", c.subgroups)?;
        writeln!(f, "  timestamp-query   {}", c.timestamps)?;
        writeln!(
            f,
            "  cooperative-matrix {}",
            precision::describe(&self.coop_shapes)
        )?;
        writeln!(f, "precision:      {} products", c.precision.name())?;
        for p in [Precision::F32, Precision::F16] {
            match c.coop.at(p) {
                Some((k, sg)) => writeln!(
                    f,
                    "{} products:   cooperative matrices, {} (subgroup {sg})",
                    p.name(),
                    k.name()
                )?,
                None => writeln!(f, "{} products:   portable kernels", p.name())?,
            }
        }
        match c.max_loop_iterations {
            Some(n) => writeln!(
                f,
                "loop cap:       {n} iterations per invocation (long loops split over dispatches)"
            )?,
            None => writeln!(f, "loop cap:       none")?,
        }
        write!(
            f,
            "kernels:        {}",
            if c.cpu_kernels {
                "CPU-adapter variants (register blocking, no workgroup tiles)"
            } else {
                "GPU variants (workgroup-memory tiles)"
            }
        )
    }
}
