//! A column of the `ui FILE` index: values in fixed chunks, so growing never copies. (A
//! doubling `Vec` of tens of megabytes leaves its old buffers resident in the allocator's heap;
//! at 10 million records that was half the index again.)

/// Values per chunk.
const CHUNK: usize = 1 << 16;

/// A growable array of `T` stored in chunks of [`CHUNK`] values.
#[derive(Debug, Default)]
pub struct Column<T> {
    /// Full chunks, then the one being filled.
    chunks: Vec<Vec<T>>,
    /// Values in all.
    len: usize,
}

impl<T: Copy> Column<T> {
    /// Append `v`.
    pub fn push(&mut self, v: T) {
        if self.len % CHUNK == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push(v);
            self.len += 1;
        }
    }

    /// The value at `n`.
    pub fn get(&self, n: usize) -> Option<T> {
        self.chunks.get(n / CHUNK)?.get(n % CHUNK).copied()
    }

    /// The last value.
    pub fn last(&self) -> Option<T> {
        self.len.checked_sub(1).and_then(|n| self.get(n))
    }

    /// Values in all.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T> std::ops::Index<usize> for Column<T> {
    type Output = T;

    fn index(&self, n: usize) -> &T {
        &self.chunks[n / CHUNK][n % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_span_chunks() {
        let mut c = Column::default();
        for i in 0..(2 * CHUNK + 3) as u32 {
            c.push(i);
        }
        assert_eq!(c.len(), 2 * CHUNK + 3);
        assert_eq!(c[CHUNK], CHUNK as u32);
        assert_eq!(c.get(2 * CHUNK + 2), Some(2 * CHUNK as u32 + 2));
        assert_eq!(c.get(2 * CHUNK + 3), None);
        assert_eq!(c.last(), Some(2 * CHUNK as u32 + 2));
        assert_eq!(c.chunks.len(), 3);
    }
}
