//! A vector stored in chunks of [`CHUNK`] elements, for the rows of an open segment's index
//! ([`super::open_segment::OpenIndex`]): pushing never moves what is already stored.
//!
//! Why not a `Vec`: a `Vec` grows by copying itself into twice the space, while the writer
//! holds the index's write lock, so the append that crosses a power of two waits for the copy
//! (and, until the old buffer is freed, both live at once: a day's index of 7 M rows, 224 MB,
//! would briefly take 448 MB). Here a full chunk stays where it is and the next one is
//! allocated beside it; only the small list of chunks is ever copied.

/// Elements per chunk (a power of two: the first chunk grows by doubling up to it, wasting no
/// capacity when it is full).
pub const CHUNK: usize = 4096;

/// A growable sequence of `T` in chunks of [`CHUNK`].
#[derive(Debug, Clone)]
pub struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked { chunks: Vec::new(), len: 0 }
    }
}

impl<T: Copy> Chunked<T> {
    /// Appends `v`.
    #[inline]
    pub fn push(&mut self, v: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(v),
            // A chunk after the first is allocated whole; the first grows like a `Vec`, so that
            // an index of a few rows stays small.
            Some(_) => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(v);
                self.chunks.push(c);
            }
            None => self.chunks.push(vec![v]),
        }
        self.len += 1;
    }

    /// The element at `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    /// Elements held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    /// The elements in order, copied into one `Vec`.
    pub fn to_vec(&self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_a_vec_holds_across_chunk_boundaries() {
        let mut c: Chunked<u64> = Chunked::default();
        assert!(c.is_empty() && c.get(0).is_none() && c.to_vec().is_empty());
        let n = 3 * CHUNK + 17;
        for i in 0..n as u64 {
            c.push(i * 3);
        }
        assert_eq!(c.len(), n);
        for i in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, n - 1] {
            assert_eq!(c.get(i), Some(&(i as u64 * 3)), "element {i}");
        }
        assert_eq!(c.get(n), None);
        let want: Vec<u64> = (0..n as u64).map(|i| i * 3).collect();
        assert_eq!(c.to_vec(), want);
        assert!(c.iter().copied().eq(want.iter().copied()));
    }

    /// Growing never moves a stored element: the chunks' buffers stay where they were.
    #[test]
    fn growing_moves_nothing_already_stored() {
        let mut c: Chunked<u32> = Chunked::default();
        for i in 0..CHUNK as u32 {
            c.push(i);
        }
        let first: *const u32 = c.get(0).unwrap();
        let last_of_first: *const u32 = c.get(CHUNK - 1).unwrap();
        for i in 0..(4 * CHUNK) as u32 {
            c.push(i);
        }
        assert_eq!(c.get(0).unwrap() as *const u32, first);
        assert_eq!(c.get(CHUNK - 1).unwrap() as *const u32, last_of_first);
        assert!(c.chunks.iter().all(|k| k.capacity() == CHUNK), "every chunk holds exactly CHUNK");
    }
}
