//! The guest's allocator: a bump allocator over a static arena, so a fresh
//! instance serves a request without growing its memory.
//!
//! std's allocator on wasm takes its heap from `memory.grow` on an
//! instance's first allocation: every fresh instance grows its memory, and
//! the host resets those pages after every request. The arena lives in the
//! module's zero-initialised data instead, inside the memory the instance
//! starts with.
//!
//! - A request's allocations bump up from the arena's start and are
//!   counted; when the last of them is freed (the host's post-return frees
//!   the response), the arena starts over, so an instance that serves many
//!   requests (`--instance-reuse`) reuses the same bytes.
//! - What [`lasting`] allocates (the app, built once per instance) comes
//!   from the arena's other end and is never given back.
//! - What does not fit (a large body, say) goes to std's allocator, which
//!   frees it as usual.
//!
//! A wasm guest runs one thread, so the state needs no lock.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

/// Bytes of the arena. With the guest's 64 KiB stack and its data it keeps
/// the whole memory within the host's first 128 KiB, which the host resets
/// cheapest.
const ARENA_SIZE: usize = 32 << 10;

#[repr(C, align(16))]
struct Bytes([u8; ARENA_SIZE]);

struct State {
    /// Next free byte of the request region (grows up), as an address;
    /// 0 before the first allocation.
    top: usize,
    /// Lowest byte of the lasting region (grows down), as an address.
    floor: usize,
    /// Allocations of the request region not freed yet.
    live: usize,
    /// Whether allocations go to the lasting region.
    lasting: bool,
}

/// The allocator; the SDK installs it as the global allocator on wasm
/// (its `arena` feature, on by default).
pub struct Arena {
    bytes: UnsafeCell<Bytes>,
    state: UnsafeCell<State>,
}

// SAFETY: a wasm guest has one thread; natively `Arena` is only a test
// subject, used from one thread at a time.
unsafe impl Sync for Arena {}

impl Arena {
    pub const fn new() -> Arena {
        Arena {
            bytes: UnsafeCell::new(Bytes([0; ARENA_SIZE])),
            state: UnsafeCell::new(State {
                top: 0,
                floor: 0,
                live: 0,
                lasting: false,
            }),
        }
    }

    fn start(&self) -> usize {
        self.bytes.get() as usize
    }

    fn end(&self) -> usize {
        self.start() + ARENA_SIZE
    }

    /// The state, with its bounds set on first use.
    #[allow(clippy::mut_from_ref)]
    fn state(&self) -> &mut State {
        // SAFETY: one thread, and no caller holds the reference across a
        // call that takes it again.
        let state = unsafe { &mut *self.state.get() };
        if state.top == 0 {
            state.top = self.start();
            state.floor = self.end();
        }
        state
    }

    fn holds(&self, address: usize) -> bool {
        (self.start()..self.end()).contains(&address)
    }

    /// Runs `f` with its allocations kept for the instance's life.
    pub fn lasting<T>(&self, f: impl FnOnce() -> T) -> T {
        let before = std::mem::replace(&mut self.state().lasting, true);
        let value = f();
        self.state().lasting = before;
        value
    }

    /// Request-region allocations not freed yet (for tests).
    #[cfg(test)]
    pub fn live(&self) -> usize {
        self.state().live
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let state = self.state();
        let (size, align) = (layout.size(), layout.align());
        if state.lasting {
            let fits = (state.floor.checked_sub(size))
                .map(|floor| floor & !(align - 1))
                .filter(|&floor| floor >= state.top);
            if let Some(floor) = fits {
                state.floor = floor;
                return floor as *mut u8;
            }
        } else {
            let start = state.top.next_multiple_of(align);
            if start
                .checked_add(size)
                .is_some_and(|end| end <= state.floor)
            {
                state.top = start + size;
                state.live += 1;
                return start as *mut u8;
            }
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let address = ptr as usize;
        if !self.holds(address) {
            // SAFETY: only `System` hands out addresses outside the arena.
            return unsafe { System.dealloc(ptr, layout) };
        }
        let state = self.state();
        if address >= state.floor {
            return; // lasting
        }
        state.live -= 1;
        if state.live == 0 {
            state.top = self.start();
        } else if address + layout.size() == state.top {
            state.top = address;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let address = ptr as usize;
        if self.holds(address) {
            let state = self.state();
            let newest = address < state.floor && address + layout.size() == state.top;
            // The newest request allocation grows or shrinks in place.
            if newest
                && address
                    .checked_add(new_size)
                    .is_some_and(|end| end <= state.floor)
            {
                state.top = address + new_size;
                return ptr;
            }
            // Any other arena block shrinks in place (wit-bindgen shrinks
            // every list it lowers).
            if new_size <= layout.size() {
                return ptr;
            }
        } else if !self.state().lasting {
            // SAFETY: `ptr` came from `System` with `layout`.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the layout of a size the caller asked for, with the
        // alignment it had; both blocks are valid for the bytes copied.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn a_request_starts_over_when_its_last_allocation_is_freed() {
        let arena = Arena::new();
        unsafe {
            let a = arena.alloc(layout(10, 1));
            let b = arena.alloc(layout(8, 8));
            assert_eq!(a as usize, arena.start());
            assert_eq!(b as usize, arena.start() + 16);
            assert_eq!(arena.live(), 2);
            arena.dealloc(a, layout(10, 1));
            let c = arena.alloc(layout(4, 4));
            assert_eq!(c as usize, arena.start() + 24);
            arena.dealloc(b, layout(8, 8));
            arena.dealloc(c, layout(4, 4));
            assert_eq!(arena.live(), 0);
            assert_eq!(arena.alloc(layout(1, 1)) as usize, arena.start());
        }
    }

    #[test]
    fn the_newest_allocation_grows_in_place() {
        let arena = Arena::new();
        unsafe {
            let a = arena.alloc(layout(4, 1));
            a.write(7);
            let grown = arena.realloc(a, layout(4, 1), 100);
            assert_eq!(grown, a);
            let b = arena.alloc(layout(1, 1));
            assert_eq!(b as usize, arena.start() + 100);
            // Not the newest any more: moved, its bytes with it.
            let moved = arena.realloc(a, layout(100, 1), 200);
            assert_eq!(moved as usize, arena.start() + 101);
            assert_eq!(moved.read(), 7);
            assert_eq!(arena.live(), 2);
            // Shrunk in place, wherever it is.
            assert_eq!(arena.realloc(moved, layout(200, 1), 50), moved);
            assert_eq!(arena.realloc(grown, layout(100, 1), 10), grown);
            assert_eq!(arena.live(), 2);
        }
    }

    #[test]
    fn lasting_allocations_survive_a_fresh_start() {
        let arena = Arena::new();
        unsafe {
            let request = arena.alloc(layout(16, 1));
            let kept = arena.lasting(|| arena.alloc(layout(16, 8)));
            assert_eq!(kept as usize, arena.end() - 16);
            kept.write(42);
            arena.dealloc(kept, layout(16, 8));
            assert_eq!(arena.live(), 1);
            arena.dealloc(request, layout(16, 1));
            let next = arena.alloc(layout(ARENA_SIZE - 16, 1));
            assert_eq!(next as usize, arena.start());
            assert_eq!(kept.read(), 42);
        }
    }

    #[test]
    fn what_does_not_fit_goes_to_the_system_allocator() {
        let arena = Arena::new();
        unsafe {
            let big = arena.alloc(layout(ARENA_SIZE + 1, 1));
            assert!(!arena.holds(big as usize));
            assert_eq!(arena.live(), 0);
            let bigger = arena.realloc(big, layout(ARENA_SIZE + 1, 1), 2 * ARENA_SIZE);
            assert!(!arena.holds(bigger as usize));
            arena.dealloc(bigger, layout(2 * ARENA_SIZE, 1));
            let small = arena.alloc(layout(8, 8));
            assert_eq!(small as usize, arena.start());
        }
    }
}
