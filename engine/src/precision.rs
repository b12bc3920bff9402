//! How the engine's matrix products multiply: the operand precision (a user's setting) and the
//! cooperative matrices (tensor cores) that carry them where the adapter has them.
//!
//! Precision is a property of the device, not of each op: every GEMM of a run (matmul, the
//! convolutions, attention's products) multiplies the same way, so a run's numerics do not depend
//! on which kernel variant an op picked. A model that must stay f32 whatever the device's
//! setting (T5, whose activations overflow f16) runs inside [`scoped`], which overrides the
//! precision for the calling thread only: other threads' work on the same device is unaffected. `F16` means what tensor cores compute: operands rounded
//! to f16, products (exact in f32) accumulated in f32. The portable kernels round the same way,
//! so a CPU adapter or a GPU without cooperative matrices reproduces the fast path's numerics
//! and only its speed differs.

use iterinv_kernels::families::matmul::{
    MATMUL_COOP_EMULATED, MATMUL_COOP_F16X16, MATMUL_COOP_F16X8, MATMUL_COOP_F32X8,
};
use iterinv_kernels::Kernel;
use wgpu::{CooperativeMatrixProperties as Props, CooperativeScalarType as Scalar};

use crate::error::{Error, Result};

/// The precision of the operands of every matrix product.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 operands (the reference numerics).
    #[default]
    F32,
    /// Operands rounded to f16 (round to nearest even; past ±65504 they become infinities),
    /// products accumulated in f32.
    F16,
}

impl Precision {
    /// `f32` or `f16`, as the CLI and `ITERINV_PRECISION` spell it.
    pub fn parse(s: &str) -> Option<Precision> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Some(Precision::F32),
            "f16" | "fp16" | "float16" | "half" => Some(Precision::F16),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// `ITERINV_PRECISION`, or f32 when unset; an error naming the variable when unreadable.
    pub fn from_env() -> Result<Precision> {
        match std::env::var("ITERINV_PRECISION") {
            Err(_) => Ok(Precision::F32),
            Ok(v) => Precision::parse(&v).ok_or_else(|| {
                Error::Device(format!("ITERINV_PRECISION={v:?}: expected f32 or f16"))
            }),
        }
    }

    /// Whether kernels round their GEMM operands to f16 (the `ROUND_F16` constant).
    pub fn rounds_to_f16(self) -> bool {
        self == Precision::F16
    }
}

thread_local! {
    static OVERRIDE: std::cell::Cell<Option<Precision>> = const { std::cell::Cell::new(None) };
}

/// Run `f` with every matrix product this thread launches at `precision`, whatever the device's
/// setting; the previous state is restored after, also when `f` panics.
pub fn scoped<R>(precision: Precision, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Precision>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(precision))));
    f()
}

/// This thread's override ([`scoped`]), if any.
pub(crate) fn current() -> Option<Precision> {
    OVERRIDE.with(|o| o.get())
}

/// Whether matrix products may run on cooperative matrices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cooperative {
    /// Where the adapter offers a shape for the chosen precision (the default).
    #[default]
    Auto,
    /// Never: the portable kernels only.
    Off,
    /// Always, failing at device creation where the adapter has none: for checks on a GPU that
    /// must not pass by falling back.
    Required,
    /// The cooperative kernels' bodies on matrices emulated in plain WGSL: runs on any adapter,
    /// for testing those bodies where the hardware lacks the feature.
    Emulated,
}

impl Cooperative {
    /// `auto`, `off`, `on` (required) or `emulated`, as `ITERINV_COOP` spells it.
    pub fn parse(s: &str) -> Option<Cooperative> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(Cooperative::Auto),
            "off" | "0" | "no" => Some(Cooperative::Off),
            "on" | "1" | "yes" | "required" => Some(Cooperative::Required),
            "emulated" => Some(Cooperative::Emulated),
            _ => None,
        }
    }

    /// `ITERINV_COOP`, or `Auto` when unset; an error naming the variable when unreadable.
    pub fn from_env() -> Result<Cooperative> {
        match std::env::var("ITERINV_COOP") {
            Err(_) => Ok(Cooperative::Auto),
            Ok(v) => Cooperative::parse(&v).ok_or_else(|| {
                Error::Device(format!(
                    "ITERINV_COOP={v:?}: expected auto, off, on or emulated"
                ))
            }),
        }
    }
}

/// The cooperative-matrix kernels a device runs its matrix products on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoopKernels {
    /// 16 × 16 × 16 tiles, f16 inputs, f32 accumulators.
    F16x16,
    /// 8 × 8 × 8 tiles, f16 inputs, f32 accumulators.
    F16x8,
    /// 8 × 8 × 8 tiles, f32 inputs and accumulators.
    F32x8,
    /// Emulated 16 × 16 tiles (the bodies of the above, on any adapter).
    Emulated,
}

impl CoopKernels {
    pub fn matmul(self) -> &'static Kernel {
        match self {
            CoopKernels::F16x16 => &MATMUL_COOP_F16X16,
            CoopKernels::F16x8 => &MATMUL_COOP_F16X8,
            CoopKernels::F32x8 => &MATMUL_COOP_F32X8,
            CoopKernels::Emulated => &MATMUL_COOP_EMULATED,
        }
    }

    /// The side of the tiles the kernels multiply.
    pub fn tile(self) -> usize {
        match self {
            CoopKernels::F16x16 | CoopKernels::Emulated => 16,
            CoopKernels::F16x8 | CoopKernels::F32x8 => 8,
        }
    }

    /// Tiles each subgroup owns per side (the kernels' `TI` = `TJ`) for an `m` × `n` GEMM over
    /// `batch` on a device with `max_storage` bytes of workgroup memory: 4 (128 × 128 outputs a
    /// workgroup of 16 × 16 tiles, half the operand traffic of 64 × 64) where both sides take two
    /// such blocks, the grid still has 128 workgroups to spread over the GPU's cores and the
    /// staging fits, else 2. The emulated kernels take the wide blocks from two blocks a side on,
    /// so that tests reach them at small shapes.
    pub fn tiles_per_side(self, m: usize, n: usize, batch: usize, max_storage: u32) -> usize {
        let side = 2 * 4 * self.tile();
        let blocks = m.div_ceil(side) * n.div_ceil(side) * batch.max(1);
        let wide = m >= 2 * side && n >= 2 * side;
        let fits = self.workgroup_bytes(4) <= max_storage as usize;
        if wide && fits && (self == CoopKernels::Emulated || blocks >= 128) {
            4
        } else {
            2
        }
    }

    /// Tiles of K staged per step (the kernels' `KSTEPS`): 2, but 1 for the emulated kernels'
    /// wide blocks, whose f32 staging would otherwise outgrow 32 KiB of workgroup memory.
    pub fn k_steps(self, per_side: usize) -> usize {
        if self == CoopKernels::Emulated && per_side > 2 {
            1
        } else {
            COOP_KSTEPS
        }
    }

    /// Workgroup memory of the kernels at `per_side` (gemm_coop.wgsl's staged A and B blocks,
    /// rows padded by 16 bytes, and four f32 epilogue tiles).
    pub fn workgroup_bytes(self, per_side: usize) -> usize {
        let cm = self.tile();
        let (side, bk) = self.block(per_side);
        let h = match self {
            CoopKernels::F16x16 | CoopKernels::F16x8 => 2,
            CoopKernels::F32x8 | CoopKernels::Emulated => 4,
        };
        let pad = 16 / h;
        h * (side * (bk + pad) + bk * (side + pad)) + COOP_SUBGROUPS * cm * (cm + 4) * 4
    }

    /// Outputs per workgroup side and K staged per step, with the kernels' grid (gemm_coop.wgsl):
    /// 2 × 2 subgroups owning `per_side` × `per_side` tiles each.
    pub fn block(self, per_side: usize) -> (usize, usize) {
        (
            2 * per_side * self.tile(),
            self.k_steps(per_side) * self.tile(),
        )
    }

    /// Loop iterations an invocation runs per staged K step and once, counted as for the tiled
    /// kernels (every loop's iterations, none assumed unrolled): what the loop cap of a CPU
    /// adapter budgets. Only the emulated kernels run there; their multiply of two tiles loops
    /// over the lane's `CM²/SG` elements × `CM` k.
    pub fn loop_iterations(self, subgroup: usize, per_side: usize) -> (usize, usize) {
        let cm = self.tile();
        let (bm, bk) = self.block(per_side);
        let lane = cm * cm / subgroup;
        let mma = lane * (1 + cm);
        let loads = 2 * bm * bk / (COOP_SUBGROUPS * subgroup);
        let t = per_side;
        let per_step = 1 + loads + self.k_steps(per_side) * (1 + t + t * (1 + t * mma));
        (per_step, 1 + t * t * (1 + 2 * lane))
    }

    pub fn name(self) -> &'static str {
        match self {
            CoopKernels::F16x16 => "16x16x16 f16 -> f32",
            CoopKernels::F16x8 => "8x8x8 f16 -> f32",
            CoopKernels::F32x8 => "8x8x8 f32 -> f32",
            CoopKernels::Emulated => "emulated 16x16x16",
        }
    }
}

/// The cooperative-matrix kernels (and the subgroup size they are built for) that carry each
/// precision's products on a device; `None`: the portable kernels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoopChoice {
    pub f32: Option<(CoopKernels, u32)>,
    pub f16: Option<(CoopKernels, u32)>,
}

impl CoopChoice {
    pub fn at(&self, precision: Precision) -> Option<(CoopKernels, u32)> {
        match precision {
            Precision::F32 => self.f32,
            Precision::F16 => self.f16,
        }
    }
}

/// The cooperative kernels' grid: 2 × 2 subgroups (each owning `TI` × `TJ` tiles of side `CM`,
/// see [`CoopKernels::tiles_per_side`]); K is staged `2·CM` at a time.
const COOP_SUBGROUPS: usize = 4;
const COOP_KSTEPS: usize = 2;

/// The subgroup size the emulated kernels assume (any divisor of 256 works; NVIDIA's, so the
/// emulation runs the tiling that hardware runs).
pub const EMULATED_SUBGROUP: u32 = 32;

/// What the adapter's cooperative-matrix shapes offer for `precision`: f16 inputs with f32
/// accumulators for `F16` (16 × 16 preferred), f32 throughout for `F32`.
fn hardware_choice(precision: Precision, shapes: &[Props]) -> Option<CoopKernels> {
    let has = |side: u32, ab: Scalar| {
        shapes.iter().any(|p| {
            p.m_size == side
                && p.n_size == side
                && p.k_size == side
                && p.ab_type == ab
                && p.cr_type == Scalar::F32
        })
    };
    match precision {
        Precision::F16 if has(16, Scalar::F16) => Some(CoopKernels::F16x16),
        Precision::F16 if has(8, Scalar::F16) => Some(CoopKernels::F16x8),
        Precision::F32 if has(8, Scalar::F32) => Some(CoopKernels::F32x8),
        _ => None,
    }
}

/// The cooperative kernels for a device: `shapes` are the adapter's (empty where the device
/// lacks the feature), `subgroup` its fixed subgroup size (`None` where it varies, which the
/// kernels' subgroup indexing cannot take).
pub(crate) fn choose(
    wanted: Cooperative,
    precision: Precision,
    shapes: &[Props],
    subgroup: Option<u32>,
) -> Result<Option<(CoopKernels, u32)>> {
    let hardware = subgroup.and_then(|sg| Some((hardware_choice(precision, shapes)?, sg)));
    match wanted {
        Cooperative::Off => Ok(None),
        Cooperative::Emulated => Ok(Some((CoopKernels::Emulated, EMULATED_SUBGROUP))),
        Cooperative::Auto => Ok(hardware),
        Cooperative::Required => hardware.map(Some).ok_or_else(|| {
            Error::Device(format!(
                "cooperative matrices were required (ITERINV_COOP=on) but the device offers none \
                 for {} products with a fixed subgroup size (shapes offered: {}; subgroup size {})",
                precision.name(),
                describe(shapes),
                subgroup.map_or("varies".to_string(), |s| s.to_string()),
            ))
        }),
    }
}

/// [`choose`] for a device created on an adapter with `features` enabled and cooperative-matrix
/// `shapes`: the f16 shapes need f16 in shaders too, and the kernels index subgroups by
/// invocation, which needs one fixed subgroup size.
pub(crate) fn for_adapter(
    wanted: Cooperative,
    precision: Precision,
    info: &wgpu::AdapterInfo,
    features: wgpu::Features,
    shapes: &[Props],
) -> Result<CoopChoice> {
    let f16 = features.contains(wgpu::Features::SHADER_F16);
    let usable: Vec<Props> = shapes
        .iter()
        .filter(|p| f16 || p.ab_type != Scalar::F16)
        .copied()
        .collect();
    let subgroup = (features.contains(wgpu::Features::SUBGROUP)
        && info.subgroup_min_size == info.subgroup_max_size)
        .then_some(info.subgroup_min_size);
    // `Required` holds for the device's own precision; the other takes what there is.
    let other = |p: Precision| {
        let w = match wanted {
            Cooperative::Required if p != precision => Cooperative::Auto,
            w => w,
        };
        choose(w, p, &usable, subgroup)
    };
    Ok(CoopChoice {
        f32: other(Precision::F32)?,
        f16: other(Precision::F16)?,
    })
}

/// The adapter's shapes, for messages and `iterinv info`.
pub fn describe(shapes: &[Props]) -> String {
    if shapes.is_empty() {
        return "none".into();
    }
    shapes
        .iter()
        .map(|p| {
            format!(
                "{}x{}x{} {:?}->{:?}",
                p.m_size, p.n_size, p.k_size, p.ab_type, p.cr_type
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(side: u32, ab: Scalar, cr: Scalar) -> Props {
        Props {
            m_size: side,
            n_size: side,
            k_size: side,
            ab_type: ab,
            cr_type: cr,
            saturating_accumulation: false,
        }
    }

    #[test]
    fn picks_the_shape_that_carries_the_precision() {
        let nvidia = [
            shape(16, Scalar::F16, Scalar::F16),
            shape(16, Scalar::F16, Scalar::F32),
        ];
        let apple = [
            shape(8, Scalar::F16, Scalar::F32),
            shape(8, Scalar::F32, Scalar::F32),
        ];
        let auto = Cooperative::Auto;
        let f16 = Precision::F16;
        let f32 = Precision::F32;
        assert_eq!(
            choose(auto, f16, &nvidia, Some(32)).unwrap(),
            Some((CoopKernels::F16x16, 32))
        );
        // No f32 inputs on NVIDIA's list: f32 products stay on the portable kernels.
        assert_eq!(choose(auto, f32, &nvidia, Some(32)).unwrap(), None);
        assert_eq!(
            choose(auto, f16, &apple, Some(32)).unwrap(),
            Some((CoopKernels::F16x8, 32))
        );
        assert_eq!(
            choose(auto, f32, &apple, Some(32)).unwrap(),
            Some((CoopKernels::F32x8, 32))
        );
        // f16 accumulators only, or a subgroup size that varies: nothing usable.
        let f16_acc = [shape(16, Scalar::F16, Scalar::F16)];
        assert_eq!(choose(auto, f16, &f16_acc, Some(32)).unwrap(), None);
        assert_eq!(choose(auto, f16, &nvidia, None).unwrap(), None);
        assert!(choose(Cooperative::Required, f16, &[], Some(8)).is_err());
        assert_eq!(
            choose(Cooperative::Off, f16, &nvidia, Some(32)).unwrap(),
            None
        );
        assert_eq!(
            choose(Cooperative::Emulated, f32, &[], None).unwrap(),
            Some((CoopKernels::Emulated, EMULATED_SUBGROUP))
        );
    }

    #[test]
    fn wide_blocks_where_both_sides_and_the_grid_are_large() {
        let k = CoopKernels::F16x16;
        const KIB32: u32 = 32 << 10;
        // 4096² takes 128 × 128 blocks: 1,024 of them.
        assert_eq!(k.tiles_per_side(4096, 4096, 1, KIB32), 4);
        assert_eq!(k.block(4), (128, 32));
        // A grid of 4 wide blocks would leave most of a GPU idle; one side too short: 64 × 64.
        assert_eq!(k.tiles_per_side(256, 256, 1, KIB32), 2);
        assert_eq!(k.tiles_per_side(192, 8192, 2, KIB32), 2);
        assert_eq!(k.block(2), (64, 32));
        // The wide staging (24 KiB) past a 16 KiB device: 64 × 64 (14.8 KiB).
        assert_eq!(k.workgroup_bytes(4), 24_064);
        assert_eq!(k.workgroup_bytes(2), 14_848);
        assert_eq!(k.tiles_per_side(4096, 4096, 1, 16 << 10), 2);
        // The emulation takes wide blocks from two a side, for the tests, staging one K tile at
        // a time so its f32 blocks fit 32 KiB (lavapipe's limit).
        let e = CoopKernels::Emulated;
        assert_eq!(e.tiles_per_side(256, 256, 1, KIB32), 4);
        assert_eq!(e.tiles_per_side(255, 4096, 1, KIB32), 2);
        assert_eq!(e.block(4), (128, 16));
        assert!(e.workgroup_bytes(4) <= KIB32 as usize && e.workgroup_bytes(2) <= KIB32 as usize);
        // Metal's 8 × 8 tiles: 64 × 64 wide blocks.
        assert_eq!(CoopKernels::F16x8.block(4), (64, 16));
    }

    #[test]
    fn scoped_overrides_this_thread_only_and_restores() {
        assert_eq!(current(), None);
        scoped(Precision::F16, || {
            assert_eq!(current(), Some(Precision::F16));
            scoped(Precision::F32, || {
                assert_eq!(current(), Some(Precision::F32))
            });
            assert_eq!(current(), Some(Precision::F16));
            // Another thread keeps the device's setting.
            std::thread::scope(|s| {
                s.spawn(|| assert_eq!(current(), None)).join().unwrap();
            });
        });
        assert_eq!(current(), None);
        let unwound = std::panic::catch_unwind(|| scoped(Precision::F16, || panic!("inside")));
        assert!(unwound.is_err());
        assert_eq!(current(), None, "a panic inside leaves the override behind");
    }

    #[test]
    fn parses_the_spellings_it_documents() {
        assert_eq!(Precision::parse("F16"), Some(Precision::F16));
        assert_eq!(Precision::parse("fp32"), Some(Precision::F32));
        assert_eq!(Precision::parse("bf16"), None);
        assert_eq!(Cooperative::parse("on"), Some(Cooperative::Required));
        assert_eq!(Cooperative::parse("emulated"), Some(Cooperative::Emulated));
        assert_eq!(Cooperative::parse("maybe"), None);
    }
}
