//! A minimal flatbuffer reader for the tests: tables through their vtables,
//! vectors of scalars, strings and tables (no verification beyond bounds).

/// A table at `pos` in `buf`.
#[derive(Clone, Copy, Debug)]
pub struct Tab<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn u16_at(b: &[u8], p: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(p..p + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], p: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(p..p + 4)?.try_into().ok()?))
}

impl<'a> Tab<'a> {
    /// The root table (the first word is its offset).
    pub fn root(buf: &'a [u8]) -> Option<Tab<'a>> {
        Some(Tab {
            buf,
            pos: u32_at(buf, 0)? as usize,
        })
    }

    /// Where field `id` is stored, `None` when absent.
    fn field(&self, id: usize) -> Option<usize> {
        let soff = u32_at(self.buf, self.pos)? as i32 as i64;
        let vt = usize::try_from(self.pos as i64 - soff).ok()?;
        let vt_len = u16_at(self.buf, vt)? as usize;
        let fo = 4 + 2 * id;
        if fo + 2 > vt_len {
            return None;
        }
        match u16_at(self.buf, vt + fo)? {
            0 => None,
            o => Some(self.pos + o as usize),
        }
    }

    fn scalar<const N: usize>(&self, id: usize) -> Option<[u8; N]> {
        let p = self.field(id)?;
        self.buf.get(p..p + N)?.try_into().ok()
    }

    /// A `u32` field.
    pub fn u32(&self, id: usize) -> Option<u32> {
        self.scalar::<4>(id).map(u32::from_le_bytes)
    }

    /// An `i32` field.
    pub fn i32(&self, id: usize) -> Option<i32> {
        self.scalar::<4>(id).map(i32::from_le_bytes)
    }

    /// An `i8` field.
    pub fn i8(&self, id: usize) -> Option<i8> {
        self.scalar::<1>(id).map(i8::from_le_bytes)
    }

    fn indirect(&self, id: usize) -> Option<usize> {
        let p = self.field(id)?;
        Some(p + u32_at(self.buf, p)? as usize)
    }

    /// A sub-table field.
    pub fn table(&self, id: usize) -> Option<Tab<'a>> {
        Some(Tab {
            buf: self.buf,
            pos: self.indirect(id)?,
        })
    }

    /// A vector field's bytes (`elem` bytes per element) and length.
    fn vector(&self, id: usize, elem: usize) -> Option<(&'a [u8], usize)> {
        let v = self.indirect(id)?;
        let n = u32_at(self.buf, v)? as usize;
        Some((self.buf.get(v + 4..v + 4 + n * elem)?, n))
    }

    /// A `[ubyte]` field.
    pub fn bytes(&self, id: usize) -> Option<&'a [u8]> {
        self.vector(id, 1).map(|(b, _)| b)
    }

    /// A `string` field.
    pub fn str(&self, id: usize) -> Option<&'a str> {
        std::str::from_utf8(self.bytes(id)?).ok()
    }

    fn words<T, const N: usize>(&self, id: usize, f: fn([u8; N]) -> T) -> Vec<T> {
        self.vector(id, N).map_or_else(Vec::new, |(b, _)| {
            b.chunks_exact(N)
                .filter_map(|c| c.try_into().ok().map(f))
                .collect()
        })
    }

    /// An `[int]` field.
    pub fn i32s(&self, id: usize) -> Vec<i32> {
        self.words(id, i32::from_le_bytes)
    }

    /// A `[float]` field.
    pub fn f32s(&self, id: usize) -> Vec<f32> {
        self.words(id, f32::from_le_bytes)
    }

    /// A `[long]` field.
    pub fn i64s(&self, id: usize) -> Vec<i64> {
        self.words(id, i64::from_le_bytes)
    }

    /// A vector-of-tables field.
    pub fn tables(&self, id: usize) -> Vec<Tab<'a>> {
        let Some((b, n)) = self.vector(id, 4) else {
            return Vec::new();
        };
        let start = b.as_ptr() as usize - self.buf.as_ptr() as usize;
        (0..n)
            .filter_map(|i| {
                let e = start + 4 * i;
                Some(Tab {
                    buf: self.buf,
                    pos: e + u32_at(self.buf, e)? as usize,
                })
            })
            .collect()
    }
}
