//! A counting global allocator for the fuzz test binaries: it tracks, per thread, the heap bytes
//! in use and their peak, so a case can check that a lying header did not make the parser
//! allocate what the header claims (`Vec::with_capacity(header_len)`) rather than what the input
//! holds. Memory-mapped files are not heap and are not counted (the map is the input itself).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Counting;

#[global_allocator]
static COUNTING: Counting = Counting;

thread_local! {
    // Const-initialized cells without destructors: safe to touch from inside the allocator.
    static IN_USE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn record(delta: isize) {
    let _ = IN_USE.try_with(|u| {
        let now = u.get() + delta;
        u.set(now);
        let _ = PEAK.try_with(|p| {
            if now > p.get() {
                p.set(now)
            }
        });
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters change.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            record(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            record(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Growing in place or by moving: count the old block until the new one exists, as
            // a move holds both for a moment.
            record(new_size as isize);
            record(-(layout.size() as isize));
        }
        p
    }
}

/// Run `f` and return its value with the peak of this thread's heap use above what it used
/// when `f` started, in bytes. (Memory freed on another thread than it was allocated on skews
/// the count by that much; parsers run on one thread.)
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = IN_USE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let value = f();
    let peak = PEAK.with(Cell::get) - start;
    (value, peak.max(0) as usize)
}
