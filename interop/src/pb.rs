//! A minimal protocol-buffers encoder (the wire format: varint and
//! length-delimited fields), enough for ONNX's messages.

/// One message under construction: its fields, encoded, in the order added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Msg(pub Vec<u8>);

const VARINT: u64 = 0;
const LEN: u64 = 2;

impl Msg {
    /// An empty message.
    pub fn new() -> Msg {
        Msg(Vec::new())
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u64) {
        self.varint(((field as u64) << 3) | wire);
    }

    /// An integer field (`int32`, `int64`, enums): two's complement varint.
    pub fn int(&mut self, field: u32, v: i64) -> &mut Msg {
        self.key(field, VARINT);
        self.varint(v as u64);
        self
    }

    /// A `bytes` field.
    pub fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Msg {
        self.key(field, LEN);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    /// A `string` field.
    pub fn string(&mut self, field: u32, s: &str) -> &mut Msg {
        self.bytes(field, s.as_bytes())
    }

    /// An embedded message field.
    pub fn msg(&mut self, field: u32, m: &Msg) -> &mut Msg {
        self.bytes(field, &m.0)
    }

    /// A repeated integer field, packed.
    pub fn packed_ints(&mut self, field: u32, vs: &[i64]) -> &mut Msg {
        let mut body = Msg::new();
        for &v in vs {
            body.varint(v as u64);
        }
        self.bytes(field, &body.0)
    }
}

/// A decoded field value (for tests).
#[cfg(test)]
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// A varint.
    Varint(u64),
    /// Length-delimited bytes.
    Bytes(&'a [u8]),
}

/// Decodes one message level into `(field, value)` pairs (tests only);
/// `None` on malformed input.
#[cfg(test)]
pub fn decode(mut b: &[u8]) -> Option<Vec<(u32, Value<'_>)>> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let field = u32::try_from(key >> 3).ok()?;
        let value = match key & 7 {
            VARINT => Value::Varint(varint(&mut b)?),
            LEN => {
                let n = usize::try_from(varint(&mut b)?).ok()?;
                let (v, rest) = b.split_at_checked(n)?;
                b = rest;
                Value::Bytes(v)
            }
            _ => return None,
        };
        out.push((field, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut inner = Msg::new();
        inner.int(1, 300).string(2, "conv");
        let mut m = Msg::new();
        m.int(1, -1).msg(3, &inner).packed_ints(4, &[1, 128, -2]);
        assert!(
            decode(&[0x0d, 0, 0, 0, 0]).is_none(),
            "32-bit fields are not written"
        );
        let f = decode(&m.0).expect("well formed");
        assert_eq!(f[0], (1, Value::Varint(u64::MAX)));
        let Value::Bytes(b) = f[1].1 else {
            panic!("a message")
        };
        assert_eq!(
            decode(b).expect("inner"),
            vec![(1, Value::Varint(300)), (2, Value::Bytes(b"conv"))]
        );
        // Packed: 1, 128 (two bytes), -2 (ten bytes).
        let Value::Bytes(p) = f[2].1 else {
            panic!("packed")
        };
        assert_eq!(p.len(), 1 + 2 + 10);
        assert_eq!(&p[..3], &[1, 0x80, 0x01]);
    }

    #[test]
    fn known_encoding_of_a_small_message() {
        // The protobuf documentation's example: field 1 = 150 -> 08 96 01.
        let mut m = Msg::new();
        m.int(1, 150);
        assert_eq!(m.0, vec![0x08, 0x96, 0x01]);
        assert!(decode(&[0x08]).is_none(), "truncated varint");
        assert!(decode(&[0x12, 0x05, 1]).is_none(), "truncated bytes");
    }
}
