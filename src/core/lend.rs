//! Lending a slot's pixels to code the borrow checker cannot hold (Python, numpy): a window
//! onto the slot that the writer takes back when the frame is published or discarded.
//!
//! A Rust [`FrameSlot`](crate::FrameSlot) borrows its writer, so its `&mut [u8]` cannot outlive
//! the frame. A numpy array can: a script may keep `slot.array` (or a view of it) after
//! `publish()`, and a later write through it would change a published frame, or the frame a
//! later open slot of the slot holds, under its readers. So a lent slot's pixels are a mapping of
//! their own, a *window* onto the slot's pages, made once per slot and kept populated.
//!
//! Taking a window back never leaves its address unmapped (another thread's `mmap` could land
//! there, and a stale array would then write into that memory):
//! 1. `mremap(MREMAP_DONTUNMAP)` moves the window's page-table entries to a fresh address
//!    (no page is touched or copied), leaving the lent address mapped, but empty;
//! 2. private zero pages are mapped over the lent address (`MAP_FIXED` replaces atomically).
//!
//! An array still pointing there reads zeros and writes into memory nobody else sees. That
//! address stays reserved until the last [`SlotWindow`] handle (the array's owner) is dropped. The
//! window is lent again, at its new address, the next time its slot is.
//!
//! Without `MREMAP_DONTUNMAP` (Linux before 5.13, other Unix systems), step 2 alone takes the
//! window back (it is gone), and the next open slot of the slot maps a new one, slower.

use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use crate::sys;

/// A mapping of one slot's pages, owned by the writer between open slots.
#[derive(Debug)]
struct Window {
    addr: NonNull<u8>,
    len: usize,
}

// SAFETY: a window is an address range the writer owns; moving it between threads moves that
// ownership.
unsafe impl Send for Window {}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: the range is this window's own mapping, which nothing refers to while it is
        // parked (a lent window is a `SlotWindow`, never dropped as a `Window`).
        unsafe { sys::unmap(self.addr, self.len) };
    }
}

/// The parked windows of a framed channel's slots, made on first open slot.
#[derive(Debug, Default)]
pub(crate) struct Windows {
    parked: Vec<Option<Window>>,
}

/// An open slot's handle on its window: the address the pixels are lent at, mapped for as long as any
/// handle lives; once the open slot is published or discarded, private zero pages.
#[derive(Clone, Debug)]
pub struct SlotWindow(Arc<LentInner>);

#[derive(Debug)]
struct LentInner {
    /// Where the window is lent: page-aligned, `len` bytes.
    addr: NonNull<u8>,
    len: usize,
    /// Whether the window was taken back (the address then holds zero pages, ours to unmap).
    taken_back: Mutex<bool>,
}

// SAFETY: the handle carries an address and a flag behind a mutex; the memory at the address is
// written only by the open slot's holder, through the pointer the binding handed out.
unsafe impl Send for LentInner {}
// SAFETY: as above; `&LentInner` gives no access to the memory itself.
unsafe impl Sync for LentInner {}

impl Drop for LentInner {
    fn drop(&mut self) {
        // Unmapped only once taken back: the writer keeps a handle while the open slot is open.
        if *self.taken_back.get_mut().unwrap_or_else(|p| p.into_inner()) {
            // SAFETY: the zero pages mapped at the address when the window was taken back are
            // ours alone, and this was the last handle through which anything refers to them.
            unsafe { sys::unmap(self.addr, self.len) };
        }
    }
}

impl SlotWindow {
    /// The lent address (page-aligned) and its length.
    pub(crate) fn range(&self) -> (NonNull<u8>, usize) {
        (self.0.addr, self.0.len)
    }
}

impl Windows {
    /// Lends slot `slot`'s window: `len` bytes of `file` from `offset` (both page-aligned),
    /// mapped (and populated) on the slot's first open slot.
    pub(crate) fn lend(
        &mut self,
        slot: usize,
        file: &crate::sys::SegmentFile,
        offset: u64,
        len: usize,
    ) -> std::io::Result<SlotWindow> {
        if self.parked.len() <= slot {
            self.parked.resize_with(slot + 1, || None);
        }
        let addr = match self.parked[slot].take() {
            Some(w) => {
                let addr = w.addr;
                std::mem::forget(w); // lent from here: the `SlotWindow` owns the address
                addr
            }
            None => sys::map_window(file, offset, len)?,
        };
        // A fork child's copy of the window becomes zero pages (see `fork`).
        crate::fork::remember_window(addr, len);
        Ok(SlotWindow(Arc::new(LentInner { addr, len, taken_back: Mutex::new(false) })))
    }

    /// Takes slot `slot`'s window back from `lent`: from now on the lent address holds private
    /// zero pages. `Err` when even the zero pages could not be mapped: the lent address may
    /// still reach the slot, so the caller must never let the slot be rewritten.
    pub(crate) fn take_back(&mut self, slot: usize, lent: &SlotWindow) -> std::io::Result<()> {
        let inner = &lent.0;
        let mut taken_back = inner.taken_back.lock().unwrap_or_else(|p| p.into_inner());
        if *taken_back {
            return Ok(());
        }
        // SAFETY: `inner.addr..+len` is the window we lent (mapped, ours); the moved entries
        // land at a fresh address the call reserves.
        let parked = unsafe { sys::move_keeping_range(inner.addr, inner.len) };
        if let Ok(addr) = parked {
            self.parked[slot] = Some(Window { addr, len: inner.len });
        }
        // SAFETY: replaces our own lent range (still mapped, so nobody else's memory) with
        // private zero pages in one call.
        unsafe { sys::map_zero_pages(inner.addr, inner.len) }?;
        crate::fork::forget_window(inner.addr);
        *taken_back = true;
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_window_taken_back_leaves_zero_pages_and_the_file_untouched() {
        let page = 4096;
        let path = std::env::temp_dir().join(format!("shmframes-lend-test-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(2 * page as u64).unwrap();
        let _ = std::fs::remove_file(&path);
        let mut windows = Windows::default();
        for round in 1..=3u8 {
            let lent = windows.lend(0, &file, page as u64, page).unwrap();
            let (addr, len) = lent.range();
            // SAFETY: the lent range is mapped for as long as `lent` lives.
            let pixels = unsafe { std::slice::from_raw_parts_mut(addr.as_ptr(), len) };
            pixels.fill(round);
            windows.take_back(0, &lent).unwrap();
            // A stale view: reads zeros, writes privately.
            assert!(
                pixels.iter().all(|&b| b == 0),
                "round {round}: the lent address still shows the slot"
            );
            pixels.fill(0xEE);
            let mut back = vec![0u8; page];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut back, page as u64).unwrap();
            assert!(
                back.iter().all(|&b| b == round),
                "round {round}: a stale write reached the file"
            );
        }
        assert!(windows.parked[0].is_some(), "the window was kept for the next opened");
    }
}
