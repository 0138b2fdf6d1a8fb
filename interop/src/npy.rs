//! NumPy `.npy` files (format version 1.0), for the per-layer traces the
//! Python conformance tests read.

use anyhow::Result;
use std::path::Path;

/// An element type of an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// `|u1`.
    U8,
    /// `<i4`.
    I32,
}

/// The bytes of an `.npy` file holding a C-order array of `shape` whose
/// elements are `data` (little endian).
pub fn encode(dtype: Dtype, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let descr = match dtype {
        Dtype::U8 => "|u1",
        Dtype::I32 => "<i4",
    };
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n': a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Writes an int32 array.
pub fn write_i32(path: &Path, shape: &[usize], v: &[i32]) -> Result<()> {
    let data: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    atomic::write_atomic(path, &encode(Dtype::I32, shape, &data))
}

/// Writes a uint8 array.
pub fn write_u8(path: &Path, shape: &[usize], v: &[u8]) -> Result<()> {
    atomic::write_atomic(path, &encode(Dtype::U8, shape, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_describes_the_array() {
        let b = encode(Dtype::I32, &[2, 3], &[0u8; 24]);
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let h = std::str::from_utf8(&b[10..10 + hlen]).expect("ascii");
        assert!(
            h.contains("'descr': '<i4'") && h.contains("'shape': (2, 3)"),
            "{h}"
        );
        assert!(h.ends_with('\n'));
        assert_eq!(b.len(), 10 + hlen + 24);
        let one = encode(Dtype::U8, &[5], &[1; 5]);
        let hlen = u16::from_le_bytes([one[8], one[9]]) as usize;
        assert!(std::str::from_utf8(&one[10..10 + hlen])
            .expect("ascii")
            .contains("(5,)"));
    }
}
