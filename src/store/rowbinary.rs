//! A small serde serializer for ClickHouse's `RowBinary` format.
//!
//! Why not the `clickhouse` crate's own: it is private to the crate and
//! only reachable through `Insert`, which encodes rows at insert time. The
//! durable spool needs each row encoded once, when the request arrives, as
//! plain bytes it can fsync, replay after a crash and re-send row by row —
//! so rows are encoded here and sent with `insert_formatted_with`. The row
//! type stays the crate's `#[derive(Row)]` struct ([`super::row::EventRow`]),
//! so the column list ([`clickhouse::Row::COLUMN_NAMES`]) and the field
//! order are defined once; the round-trip integration test keeps both
//! encoders honest.
//!
//! Supported: integers, floats, bool, strings, byte arrays (`[u8; N]` →
//! `FixedString(N)`), sequences (`Vec`/slices → `Array`), `Option`
//! (`Nullable`), structs and newtypes — what the event row uses.

use serde::ser::{self, Serialize};

/// Why a value cannot be written as RowBinary.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("RowBinary cannot encode {0}")]
    Unsupported(&'static str),
    #[error("a sequence without a known length")]
    UnknownLength,
    #[error("{0}")]
    Custom(String),
}

impl ser::Error for EncodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        EncodeError::Custom(msg.to_string())
    }
}

/// Append `value` to `out` in RowBinary.
pub fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    value.serialize(&mut Encoder { out })
}

/// Append `n` as LEB128, the length prefix of strings and arrays.
pub(crate) fn leb128(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

macro_rules! le {
    ($($f:ident: $t:ty),*) => {$(
        fn $f(self, v: $t) -> Result<(), EncodeError> {
            self.out.extend_from_slice(&v.to_le_bytes());
            Ok(())
        }
    )*};
}

impl<'a, 'b> ser::Serializer for &'b mut Encoder<'a> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = ser::Impossible<(), EncodeError>;
    type SerializeMap = ser::Impossible<(), EncodeError>;
    type SerializeStruct = Self;
    type SerializeStructVariant = ser::Impossible<(), EncodeError>;

    le!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64, serialize_i128: i128,
        serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_u128: u128,
        serialize_f32: f32, serialize_f64: f64);

    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.out.push(v);
        Ok(())
    }
    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.out.push(u8::from(v));
        Ok(())
    }
    fn serialize_char(self, _: char) -> Result<(), EncodeError> {
        Err(EncodeError::Unsupported("char"))
    }
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.serialize_bytes(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        leb128(self.out, v.len() as u64);
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), EncodeError> {
        self.out.push(1);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        self.out.push(0);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), EncodeError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), EncodeError> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), EncodeError> {
        Err(EncodeError::Unsupported("enum"))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<(), EncodeError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), EncodeError> {
        Err(EncodeError::Unsupported("enum"))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, EncodeError> {
        leb128(self.out, len.ok_or(EncodeError::UnknownLength)? as u64);
        Ok(self)
    }
    /// Fixed-size arrays (`[u8; 16]`): no length prefix (`FixedString`).
    fn serialize_tuple(self, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        Err(EncodeError::Unsupported("enum"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, EncodeError> {
        Err(EncodeError::Unsupported("map"))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        Err(EncodeError::Unsupported("enum"))
    }
}

/// Sequences, tuples and tuple structs: each element in order, nothing between.
macro_rules! elements {
    ($($trait:ident :: $method:ident),*) => {$(
        impl<'a, 'b> ser::$trait for &'b mut Encoder<'a> {
            type Ok = ();
            type Error = EncodeError;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
                v.serialize(&mut **self)
            }
            fn end(self) -> Result<(), EncodeError> {
                Ok(())
            }
        }
    )*};
}

elements!(SerializeSeq::serialize_element, SerializeTuple::serialize_element, SerializeTupleStruct::serialize_field);

impl<'a, 'b> ser::SerializeStruct for &'b mut Encoder<'a> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, v: &T) -> Result<(), EncodeError> {
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Row<'a> {
        s: &'a str,
        n: u32,
        id: [u8; 4],
        tags: &'a [String],
        neg: i8,
    }

    #[test]
    fn encodes_like_clickhouse_rowbinary() {
        let tags = vec!["a".to_string(), "bc".to_string()];
        let mut out = Vec::new();
        encode(&Row { s: "hé", n: 0x0102_0304, id: [9, 8, 7, 6], tags: &tags, neg: -1 }, &mut out).expect("encode");
        let want: Vec<u8> = [
            &[3, b'h', 0xc3, 0xa9][..],   // String: LEB128 length + UTF-8 bytes
            &[4, 3, 2, 1],                // UInt32 little-endian
            &[9, 8, 7, 6],                // FixedString(4): raw bytes, no length
            &[2, 1, b'a', 2, b'b', b'c'], // Array(String): count, then each string
            &[0xff],                      // Int8
        ]
        .concat();
        assert_eq!(out, want);
    }

    #[test]
    fn long_lengths_use_leb128() {
        let mut out = Vec::new();
        encode("x".repeat(300).as_str(), &mut out).expect("encode");
        assert_eq!(&out[..2], &[0xac, 0x02]);
        assert_eq!(out.len(), 302);
    }
}
