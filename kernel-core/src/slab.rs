//! The kernel's object allocator: slab caches of fixed-size objects carved
//! out of 4 KiB pages, and a heap of power-of-two size classes on top.
//! We write our own because `slab_allocator_rs`, the usual crate for this,
//! is unmaintained.
//!
//! Rules: a slab page starts with a [`PageHeader`]; objects follow at the
//! first multiple of the object size after it, so every object is aligned to
//! its size and its page header is found by masking the address. Free
//! objects are linked through their first word. Pages with both free and used
//! objects sit on a doubly-linked partial list; full pages are on no list
//! (a free finds them by address); at most one empty page is kept cached and
//! the rest go straight back to the page source, so the heap never hoards
//! memory that frame accounting believes is in use.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

/// The size of the pages a [`PageSource`] hands out.
const PAGE: usize = 4096;

/// Where slab caches get their pages from.
pub trait PageSource {
    /// A fresh page: 4096 bytes, 4096-aligned, writable, owned by the caller
    /// until passed back to [`PageSource::free_page`]. `None` when out of memory.
    fn alloc_page(&mut self) -> Option<NonNull<u8>>;

    /// Takes back a page.
    ///
    /// # Safety
    ///
    /// `page` came from `alloc_page` on this source, has not been freed
    /// since, and nothing uses it any more.
    unsafe fn free_page(&mut self, page: NonNull<u8>);
}

/// Marks a page as belonging to a slab cache (a cheap check against frees of
/// foreign pointers in debug builds).
const MAGIC: u32 = 0x5AB5_1AB0;

/// The bookkeeping at offset 0 of every slab page.
#[repr(C)]
struct PageHeader {
    /// Neighbours on the partial list.
    next: Option<NonNull<PageHeader>>,
    prev: Option<NonNull<PageHeader>>,
    /// First free object in this page; each links to the next by its first word.
    free: *mut u8,
    in_use: u16,
    obj_size: u16,
    magic: u32,
}

const HEADER_SIZE: usize = core::mem::size_of::<PageHeader>();
const _: () = assert!(HEADER_SIZE <= 32 && core::mem::align_of::<PageHeader>() <= 16);

/// A cache of objects of one power-of-two size.
pub struct SlabCache {
    obj_size: usize,
    /// Head of the list of pages with both free and used objects.
    partial: Option<NonNull<PageHeader>>,
    /// The one empty page kept to absorb alloc/free ping-pong.
    empty: Option<NonNull<PageHeader>>,
    pages: usize,
    objects: usize,
}

// SAFETY: the cache owns its pages outright (no other reference to them
// exists outside objects it handed out, which it never touches while they
// are allocated), and it has no thread-affine state, so moving it to another
// CPU is as safe as moving any owned buffer.
unsafe impl Send for SlabCache {}

impl SlabCache {
    /// An empty cache of `obj_size`-byte objects. `obj_size` must be a power
    /// of two in `16..=1024`; anything else is a kernel bug and panics.
    pub const fn new(obj_size: usize) -> SlabCache {
        assert!(obj_size.is_power_of_two() && obj_size >= 16 && obj_size <= MAX_SMALL);
        SlabCache {
            obj_size,
            partial: None,
            empty: None,
            pages: 0,
            objects: 0,
        }
    }

    /// Offset of the first object in a page.
    const fn first_offset(&self) -> usize {
        // The next multiple of obj_size at or after the header.
        HEADER_SIZE.next_multiple_of(self.obj_size)
    }

    /// How many objects one page holds.
    pub const fn objects_per_page(&self) -> usize {
        (PAGE - self.first_offset()) / self.obj_size
    }

    /// The object size.
    pub fn obj_size(&self) -> usize {
        self.obj_size
    }

    /// Pages this cache holds from its source, including the cached empty one.
    pub fn pages_in_use(&self) -> usize {
        self.pages
    }

    /// Objects handed out and not yet freed.
    pub fn objects_in_use(&self) -> usize {
        self.objects
    }

    /// An object of `obj_size` bytes aligned to `obj_size`, or `None` if the
    /// source has no pages left. Its contents are unspecified.
    pub fn alloc(&mut self, src: &mut impl PageSource) -> Option<NonNull<u8>> {
        let page = match self.partial {
            Some(p) => p,
            None => {
                let p = match self.empty.take() {
                    Some(p) => p,
                    None => self.new_page(src)?,
                };
                self.push_partial(p);
                p
            }
        };
        // SAFETY: `page` is on the partial list, so it is a live page of this
        // cache with an initialised header and at least one free object, and
        // no one else holds a reference to the header.
        let hdr = unsafe { &mut *page.as_ptr() };
        let obj = hdr.free;
        debug_assert!(!obj.is_null());
        // SAFETY: `obj` is a free object of this page: in bounds, aligned for
        // a pointer (objects are >= 16-byte aligned), and its first word
        // holds the next free object, written by `new_page` or `free`.
        hdr.free = unsafe { obj.cast::<*mut u8>().read() };
        hdr.in_use += 1;
        if hdr.free.is_null() {
            // Full pages leave the list; `free` puts them back.
            self.unlink_partial(page);
        }
        self.objects += 1;
        NonNull::new(obj)
    }

    /// Returns an object to the cache. A page whose last object this was is
    /// cached if no empty page is, and otherwise given back to `src`.
    ///
    /// # Safety
    ///
    /// `ptr` came from `alloc` on this cache (with `src` the same source
    /// throughout), has not been freed since, and is not used afterwards.
    pub unsafe fn free(&mut self, ptr: NonNull<u8>, src: &mut impl PageSource) {
        // Derived from `ptr` so that the header pointer keeps the page's provenance.
        let page = ptr.as_ptr().map_addr(|a| a & !(PAGE - 1));
        let Some(page) = NonNull::new(page.cast::<PageHeader>()) else {
            // Objects never sit at offset 0 of a page, so this is a bad pointer.
            return;
        };
        // SAFETY: by the caller's contract `ptr` is an object of one of this
        // cache's live pages, whose header is at the page start and
        // initialised; no other reference to it is live.
        let hdr = unsafe { &mut *page.as_ptr() };
        debug_assert_eq!(hdr.magic, MAGIC);
        debug_assert_eq!(hdr.obj_size as usize, self.obj_size);
        debug_assert_eq!(
            (ptr.as_ptr() as usize - page.as_ptr() as usize) % self.obj_size,
            0
        );
        let was_full = hdr.free.is_null();
        // SAFETY: the object is ours again and at least pointer-sized and
        // pointer-aligned, so its first word can hold the free-list link.
        unsafe { ptr.as_ptr().cast::<*mut u8>().write(hdr.free) };
        hdr.free = ptr.as_ptr();
        hdr.in_use -= 1;
        self.objects -= 1;

        if hdr.in_use > 0 {
            if was_full {
                self.push_partial(page);
            }
            return;
        }
        if !was_full {
            self.unlink_partial(page);
        }
        if self.empty.is_none() {
            self.empty = Some(page);
        } else {
            self.pages -= 1;
            // SAFETY: the page came from `src.alloc_page` (in `new_page`), has
            // no objects in use and is on no list, so nothing refers to it.
            unsafe { src.free_page(page.cast()) };
        }
    }

    /// Gives the cached empty page, if any, back to `src`.
    ///
    /// # Safety
    ///
    /// `src` is the source this cache has been allocating from.
    pub unsafe fn trim(&mut self, src: &mut impl PageSource) {
        if let Some(page) = self.empty.take() {
            self.pages -= 1;
            // SAFETY: the cached page came from `src` and holds no objects.
            unsafe { src.free_page(page.cast()) };
        }
    }

    /// A fresh page from `src` with its header and free list set up.
    fn new_page(&mut self, src: &mut impl PageSource) -> Option<NonNull<PageHeader>> {
        let base = src.alloc_page()?;
        debug_assert_eq!(base.as_ptr() as usize % PAGE, 0);
        let first = self.first_offset();
        let count = self.objects_per_page();
        // Link the objects in address order so allocation walks up the page.
        let mut next: *mut u8 = ptr::null_mut();
        for i in (0..count).rev() {
            // SAFETY: `first + i * obj_size + obj_size <= PAGE`, so each object
            // lies inside the page we own; it is aligned for a pointer.
            unsafe {
                let obj = base.as_ptr().add(first + i * self.obj_size);
                obj.cast::<*mut u8>().write(next);
                next = obj;
            }
        }
        let page = base.cast::<PageHeader>();
        // SAFETY: the page is ours, 4096-aligned and large enough for the
        // header, which does not overlap any object.
        unsafe {
            page.as_ptr().write(PageHeader {
                next: None,
                prev: None,
                free: next,
                in_use: 0,
                obj_size: self.obj_size as u16,
                magic: MAGIC,
            })
        };
        self.pages += 1;
        Some(page)
    }

    /// Puts `page` at the head of the partial list. It must be on no list.
    fn push_partial(&mut self, page: NonNull<PageHeader>) {
        let old = self.partial;
        // SAFETY: `page` and the current head are live pages of this cache;
        // each header is accessed through one short-lived reference at a time.
        unsafe {
            let hdr = &mut *page.as_ptr();
            hdr.prev = None;
            hdr.next = old;
            if let Some(old) = old {
                (*old.as_ptr()).prev = Some(page);
            }
        }
        self.partial = Some(page);
    }

    /// Takes `page` off the partial list. It must be on it.
    fn unlink_partial(&mut self, page: NonNull<PageHeader>) {
        // SAFETY: `page` is on the partial list, so it and its neighbours are
        // live pages of this cache with initialised headers.
        unsafe {
            let (prev, next) = {
                let hdr = &mut *page.as_ptr();
                let links = (hdr.prev, hdr.next);
                hdr.prev = None;
                hdr.next = None;
                links
            };
            match prev {
                Some(p) => (*p.as_ptr()).next = next,
                None => self.partial = next,
            }
            if let Some(n) = next {
                (*n.as_ptr()).prev = prev;
            }
        }
    }
}

/// The largest request the size-class heap serves; bigger ones take the
/// kernel's page-granular path.
pub const MAX_SMALL: usize = 1024;

/// The object sizes of [`SizeClassHeap`]'s caches.
pub const SIZE_CLASSES: [usize; 7] = [16, 32, 64, 128, 256, 512, 1024];

/// The memory an allocation of `bytes` really takes from the kernel's heap:
/// its size class, or whole pages beyond [`MAX_SMALL`]. What the kernel
/// charges a reserve for an object it allocates on the reserve's behalf.
pub const fn footprint(bytes: usize) -> usize {
    let mut i = 0;
    while i < SIZE_CLASSES.len() {
        if SIZE_CLASSES[i] >= bytes {
            return SIZE_CLASSES[i];
        }
        i += 1;
    }
    bytes.div_ceil(PAGE) * PAGE
}

/// A general-purpose heap for small allocations: one slab cache per
/// power-of-two size from 16 to [`MAX_SMALL`] bytes.
pub struct SizeClassHeap {
    caches: [SlabCache; SIZE_CLASSES.len()],
}

impl Default for SizeClassHeap {
    fn default() -> Self {
        Self::new()
    }
}

impl SizeClassHeap {
    /// An empty heap holding no pages.
    pub const fn new() -> SizeClassHeap {
        SizeClassHeap {
            caches: [
                SlabCache::new(SIZE_CLASSES[0]),
                SlabCache::new(SIZE_CLASSES[1]),
                SlabCache::new(SIZE_CLASSES[2]),
                SlabCache::new(SIZE_CLASSES[3]),
                SlabCache::new(SIZE_CLASSES[4]),
                SlabCache::new(SIZE_CLASSES[5]),
                SlabCache::new(SIZE_CLASSES[6]),
            ],
        }
    }

    /// Index into [`SIZE_CLASSES`] of the smallest class that fits `layout`'s
    /// size and alignment, or `None` if it needs more than [`MAX_SMALL`].
    pub fn class_for(layout: Layout) -> Option<usize> {
        let need = layout.size().max(layout.align());
        SIZE_CLASSES.iter().position(|&c| c >= need)
    }

    /// Memory for `layout`, or `None` if it is too big for the size classes
    /// (the caller then uses its page-granular path) or pages ran out.
    pub fn alloc(&mut self, layout: Layout, src: &mut impl PageSource) -> Option<NonNull<u8>> {
        let class = Self::class_for(layout)?;
        self.caches.get_mut(class)?.alloc(src)
    }

    /// Frees memory from [`SizeClassHeap::alloc`].
    ///
    /// # Safety
    ///
    /// `ptr` came from `alloc` on this heap with the same `layout` (and the
    /// same `src` throughout), has not been freed since, and is not used
    /// afterwards.
    pub unsafe fn dealloc(&mut self, ptr: NonNull<u8>, layout: Layout, src: &mut impl PageSource) {
        let class = Self::class_for(layout);
        debug_assert!(class.is_some(), "dealloc of a layout the heap never serves");
        if let Some(cache) = class.and_then(|c| self.caches.get_mut(c)) {
            // SAFETY: `alloc` with this layout took `ptr` from this cache;
            // the rest is the caller's contract.
            unsafe { cache.free(ptr, src) };
        }
    }

    /// Gives every cached empty page back to `src`.
    ///
    /// # Safety
    ///
    /// `src` is the source this heap has been allocating from.
    pub unsafe fn trim(&mut self, src: &mut impl PageSource) {
        for cache in &mut self.caches {
            // SAFETY: forwarded caller contract.
            unsafe { cache.trim(src) };
        }
    }

    /// Pages held from the source across all classes (cached empties included).
    pub fn pages_in_use(&self) -> usize {
        self.caches.iter().map(SlabCache::pages_in_use).sum()
    }

    /// Objects handed out and not yet freed, across all classes.
    pub fn objects_in_use(&self) -> usize {
        self.caches.iter().map(SlabCache::objects_in_use).sum()
    }
}

#[cfg(test)]
mod tests;
