//! The process's memory allocator: mimalloc (its 2.x series), for the audit of many files,
//! which allocates and frees about 545 small strings and vectors per real-world domain
//! (issue 19: callgrind counts 10% fewer instructions than with glibc's malloc; the
//! measured CPU is in BENCHMARKS.md, `bench/audit-e2e` with `BASELINE=`).
//!
//! One option is changed before the first allocation: arenas are not committed eagerly.
//! With eager commit the peak resident memory of `audit --json` over 5,000 corpus files was
//! 29 MiB; without it, 22-23 MiB (glibc: 21). mimalloc reads its options when the
//! process starts, before `main`, and reserves its first arena at the first allocation,
//! which the Rust runtime makes before `main`: so the option is set by the first call into
//! the allocator.
//!
//! Allocations that need no more than a machine word's alignment (strings, vectors of
//! integers and pointers: almost all of them) go to `mi_malloc` / `mi_realloc` directly.
//! The `mimalloc` crate sends every allocation through `mi_malloc_aligned`, whose extra
//! checks cost about 10% of the allocator's instructions on the audit of real-world
//! domains. Every mimalloc block is at least word-aligned (block sizes are multiples of the
//! word, from word-aligned pages), as std's own `System` allocator relies on for malloc.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: Allocator = Allocator;

/// `mi_option_arena_eager_commit` in mimalloc 2.x's `mi_option_e` (include/mimalloc.h): the
/// fifth option; libmimalloc-sys has no name for it.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

static CONFIGURED: AtomicBool = AtomicBool::new(false);

/// The alignment every `mi_malloc` block has: a machine word.
const WORD: usize = std::mem::size_of::<usize>();

/// mimalloc with its options set by the first allocation.
pub struct Allocator;

#[inline]
fn configure() {
    // the first allocation happens on the main thread before any other thread exists;
    // a second store of the same value by a racing thread would be harmless anyway
    if !CONFIGURED.load(Ordering::Relaxed) {
        CONFIGURED.store(true, Ordering::Relaxed);
        // SAFETY: `mi_option_set` stores an integer in mimalloc's option table; it does not
        // allocate and takes no pointer.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
    }
}

// SAFETY: every call is forwarded to `MiMalloc`, a correct `GlobalAlloc`, or, for an
// alignment of at most a word, to `mi_malloc` / `mi_realloc`, which return word-aligned
// blocks of at least the size asked (or null) and whose blocks `mi_free` (what `MiMalloc`
// frees with) takes; `configure` does not allocate.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        configure();
        if layout.align() <= WORD {
            // SAFETY: `mi_malloc` takes any size; its block is word-aligned, which is
            // enough for `layout`.
            return unsafe { libmimalloc_sys::mi_malloc(layout.size()) }.cast();
        }
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { MiMalloc.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        configure();
        // SAFETY: as for `alloc`.
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (that is, by `MiMalloc`) with
        // `layout`, as the caller guarantees.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        configure();
        if layout.align() <= WORD {
            // SAFETY: `ptr` is a live block of this allocator (a mimalloc block, whichever
            // function made it); the new block is word-aligned, enough for `layout`.
            return unsafe { libmimalloc_sys::mi_realloc(ptr.cast(), new_size) }.cast();
        }
        // SAFETY: as for `dealloc`, and `new_size` as the caller guarantees.
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn arenas_are_not_committed_eagerly() {
        // the test harness has allocated by now: the option is set
        let v = std::hint::black_box(Box::new([0u8; 64]));
        assert_eq!(v.len(), 64);
        // SAFETY: reads an integer from mimalloc's option table.
        let value = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_ARENA_EAGER_COMMIT) };
        assert_eq!(value, 0);
    }

    #[test]
    fn word_aligned_blocks_keep_their_alignment_and_contents() {
        use std::alloc::{GlobalAlloc as _, Layout};
        let a = super::Allocator;
        for size in [1usize, 7, 8, 9, 15, 16, 17, 100, 4096, 70_000, 1 << 22] {
            for align in [1usize, 2, 4, 8, 16, 64] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; the block is written within `size`, grown with
                // the same layout's alignment and freed with the layout it has then.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p.addr() % align, 0, "size {size} align {align}");
                    p.write_bytes(0xa5, size);
                    let grown = a.realloc(p, layout, size * 3);
                    assert!(!grown.is_null());
                    assert_eq!(grown.addr() % align, 0, "grown {size} align {align}");
                    assert!((0..size).all(|i| *grown.add(i) == 0xa5));
                    a.dealloc(grown, Layout::from_size_align(size * 3, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
