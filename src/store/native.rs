//! ClickHouse's `Native` format, for the writer's inserts.
//!
//! Why not send the spooled `RowBinary` rows as they are: ClickHouse parses
//! `RowBinary` value by value, and on 18.16 that parse was most of its cost
//! of storing an event. Inserting the same 500,000 realistic events into a
//! table without views took it 5.6 µs per row as `RowBinary` and 1.4 µs as
//! `Native` (BENCHMARKS.md, fifth session) — and ClickHouse shares the
//! cores with Headcount. `Native` is columnar: a block is each column's
//! values back to back, so the server copies whole columns.
//!
//! The spool still holds one `RowBinary` row per event: a row is one
//! contiguous record to fsync, replay and dead-letter, written once when
//! the request arrives. The writer turns the rows of a batch into `Native`
//! blocks here, about 512 KiB at a time, which is mostly copying: strings
//! have the same encoding in both formats (a LEB128 length, then the
//! bytes), numbers too (little-endian). Only two types are rearranged:
//! * `Array(String)`: the row counts become a column of running totals
//!   (offsets), followed by every element;
//! * `LowCardinality(String)`: a dictionary of the block's distinct values
//!   (the empty string first, as ClickHouse writes it) and one index per
//!   row, in the narrowest of `UInt8`/`UInt16`/`UInt32` that fits. 18.16
//!   does not accept a plain `String` column for a `LowCardinality` one.
//!
//! This is the format of ClickHouse's HTTP interface, without the block
//! info and per-column flags of the native TCP protocol; 18.16 and current
//! versions read it the same way (the integration tests insert through it
//! on 18.16; `scripts/check_sql_modern.py` loads `tests/data/events.native`
//! into a current ClickHouse). Blocks of one INSERT are squashed into one
//! part by the server, as a `RowBinary` body is.

use super::rowbinary::leb128;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// A column type the writer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    LowCardinalityString,
    FixedString16,
    UInt8,
    Int8,
    UInt16,
    UInt32,
    UInt64,
    Int64,
    /// `DateTime('UTC')`: seconds since 1970 as `UInt32`.
    DateTimeUtc,
    ArrayString,
}

impl ColumnType {
    /// The type's name in ClickHouse, as the block states it.
    pub const fn sql(self) -> &'static str {
        match self {
            ColumnType::String => "String",
            ColumnType::LowCardinalityString => "LowCardinality(String)",
            ColumnType::FixedString16 => "FixedString(16)",
            ColumnType::UInt8 => "UInt8",
            ColumnType::Int8 => "Int8",
            ColumnType::UInt16 => "UInt16",
            ColumnType::UInt32 => "UInt32",
            ColumnType::UInt64 => "UInt64",
            ColumnType::Int64 => "Int64",
            ColumnType::DateTimeUtc => "DateTime('UTC')",
            ColumnType::ArrayString => "Array(String)",
        }
    }

    /// Bytes of a fixed-width value.
    const fn width(self) -> Option<usize> {
        match self {
            ColumnType::UInt8 | ColumnType::Int8 => Some(1),
            ColumnType::UInt16 => Some(2),
            ColumnType::UInt32 | ColumnType::DateTimeUtc => Some(4),
            ColumnType::UInt64 | ColumnType::Int64 => Some(8),
            ColumnType::FixedString16 => Some(16),
            ColumnType::String | ColumnType::LowCardinalityString | ColumnType::ArrayString => None,
        }
    }
}

/// Why a `RowBinary` row does not fit the columns.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RowError {
    #[error("the row ends inside column `{0}`")]
    Truncated(&'static str),
    #[error("{0} bytes left after the last column")]
    Trailing(usize),
}

/// `LowCardinality` index widths, as ClickHouse numbers them.
const INDEX_U8: u64 = 0;
const INDEX_U16: u64 = 1;
const INDEX_U32: u64 = 2;
/// Flags of a `LowCardinality` block: the keys follow in the block
/// (`HasAdditionalKeysBit`) and replace any earlier ones
/// (`NeedUpdateDictionary`) — what ClickHouse itself writes.
const INDEX_FLAGS: u64 = (1 << 9) | (1 << 10);
/// `LowCardinality` serialization version: `SharedDictionariesWithAdditionalKeys`.
const LOW_CARDINALITY_VERSION: u64 = 1;

/// One value of a row, as the walker finds it.
enum Field<'r> {
    /// Encoded as in both formats: a `String` (length and bytes), a number.
    Raw(&'r [u8]),
    /// The bytes of a `LowCardinality(String)` value.
    Text(&'r [u8]),
    /// The encoded elements of an `Array(String)` and how many there are.
    Items(&'r [u8], u64),
}

/// Reads a row given as pieces, each holding whole values.
struct Cursor<'p, 'r> {
    pieces: &'p [&'r [u8]],
    current: &'r [u8],
}

impl<'p, 'r> Cursor<'p, 'r> {
    fn new(pieces: &'p [&'r [u8]]) -> Self {
        Cursor { pieces, current: &[] }
    }

    /// The piece to read from: the current one, or the next non-empty.
    fn piece(&mut self) -> &'r [u8] {
        while self.current.is_empty() {
            let Some((first, rest)) = self.pieces.split_first() else { break };
            (self.current, self.pieces) = (first, rest);
        }
        self.current
    }

    fn take(&mut self, n: usize) -> Option<&'r [u8]> {
        let piece = self.piece();
        let (taken, rest) = (piece.get(..n)?, &piece[n..]);
        self.current = rest;
        Some(taken)
    }

    fn leb128(&mut self) -> Option<(u64, usize)> {
        read_leb128(self.piece())
    }

    /// A string: its encoding (length and bytes) and its bytes.
    fn string(&mut self) -> Option<(&'r [u8], &'r [u8])> {
        let (len, prefix) = self.leb128()?;
        let encoded = self.take(prefix.checked_add(usize::try_from(len).ok()?)?)?;
        Some((encoded, &encoded[prefix..]))
    }

    fn field(&mut self, ty: ColumnType) -> Option<Field<'r>> {
        if let Some(width) = ty.width() {
            return self.take(width).map(Field::Raw);
        }
        match ty {
            ColumnType::LowCardinalityString => self.string().map(|(_, text)| Field::Text(text)),
            ColumnType::ArrayString => {
                let (count, prefix) = self.leb128()?;
                self.take(prefix)?;
                // The elements, all in the piece the first one starts in.
                let piece = self.piece();
                let mut rest = piece;
                for _ in 0..count {
                    let (len, prefix) = read_leb128(rest)?;
                    rest = rest.get(prefix.checked_add(usize::try_from(len).ok()?)?..)?;
                }
                self.take(piece.len() - rest.len()).map(|items| Field::Items(items, count))
            }
            _ => self.string().map(|(encoded, _)| Field::Raw(encoded)),
        }
    }

    fn left(&mut self) -> usize {
        self.piece().len() + self.pieces.iter().map(|p| p.len()).sum::<usize>()
    }
}

/// The distinct values of a `LowCardinality(String)` column in a block.
#[derive(Default)]
struct Dictionary {
    /// The keys as the block carries them: length and bytes, back to back.
    keys: Vec<u8>,
    /// Where each key's bytes are in `keys`.
    spans: Vec<(usize, usize)>,
    /// Key number by hash of the bytes.
    table: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl Dictionary {
    fn key(&self, n: u32) -> &[u8] {
        let (start, end) = self.spans[n as usize];
        &self.keys[start..end]
    }

    fn index(&mut self, text: &[u8]) -> u32 {
        if self.spans.is_empty() {
            // ClickHouse's dictionaries start with the default value.
            self.add(b"");
        }
        let hash = self.hasher.hash_one(text);
        if let Some(&n) = self.table.find(hash, |&n| self.key(n) == text) {
            return n;
        }
        self.add(text)
    }

    fn add(&mut self, text: &[u8]) -> u32 {
        let n = self.spans.len() as u32;
        leb128(&mut self.keys, text.len() as u64);
        let start = self.keys.len();
        self.keys.extend_from_slice(text);
        self.spans.push((start, self.keys.len()));
        let (keys, spans, hasher) = (&self.keys, &self.spans, &self.hasher);
        let rehash = |&m: &u32| {
            let (s, e) = spans[m as usize];
            hasher.hash_one(&keys[s..e])
        };
        self.table.insert_unique(self.hasher.hash_one(text), n, rehash);
        n
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.spans.clear();
        self.table.clear();
    }

    /// Forget the keys from number `len` on.
    fn truncate(&mut self, len: usize) {
        while self.spans.len() > len {
            let n = (self.spans.len() - 1) as u32;
            let hash = self.hasher.hash_one(self.key(n));
            if let Ok(entry) = self.table.find_entry(hash, |&m| m == n) {
                entry.remove();
            }
            let (start, _) = self.spans.pop().unwrap_or_default();
            // The key's length prefix goes too.
            let prefix = leb128_len(self.keys.len() - start);
            self.keys.truncate(start - prefix);
        }
    }
}

/// How long each part of a column was before a row, to take the row back.
#[derive(Clone, Copy)]
struct Mark {
    values: usize,
    keys: usize,
    total: u64,
}

/// One column of a block being built.
enum Column {
    /// Values already encoded as the block carries them.
    Plain(Vec<u8>),
    LowCardinality {
        dictionary: Dictionary,
        rows: Vec<u32>,
    },
    Array {
        offsets: Vec<u8>,
        total: u64,
        items: Vec<u8>,
    },
}

impl Column {
    fn new(ty: ColumnType) -> Column {
        match ty {
            ColumnType::LowCardinalityString => {
                Column::LowCardinality { dictionary: Dictionary::default(), rows: vec![] }
            }
            ColumnType::ArrayString => Column::Array { offsets: vec![], total: 0, items: vec![] },
            _ => Column::Plain(vec![]),
        }
    }

    fn push(&mut self, field: Field<'_>) {
        match (self, field) {
            (Column::Plain(data), Field::Raw(raw)) => data.extend_from_slice(raw),
            (Column::LowCardinality { dictionary, rows }, Field::Text(text)) => rows.push(dictionary.index(text)),
            (Column::Array { offsets, total, items }, Field::Items(raw, count)) => {
                *total += count;
                offsets.extend_from_slice(&total.to_le_bytes());
                items.extend_from_slice(raw);
            }
            // The walker yields the field kind of the column's type.
            _ => {}
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Column::Plain(data) => out.extend_from_slice(data),
            Column::LowCardinality { dictionary, rows } => {
                let keys = dictionary.spans.len();
                let width = if keys <= 1 << 8 {
                    INDEX_U8
                } else if keys <= 1 << 16 {
                    INDEX_U16
                } else {
                    INDEX_U32
                };
                out.extend_from_slice(&LOW_CARDINALITY_VERSION.to_le_bytes());
                out.extend_from_slice(&(width | INDEX_FLAGS).to_le_bytes());
                out.extend_from_slice(&(keys as u64).to_le_bytes());
                out.extend_from_slice(&dictionary.keys);
                out.extend_from_slice(&(rows.len() as u64).to_le_bytes());
                for &n in rows {
                    match width {
                        INDEX_U8 => out.push(n as u8),
                        INDEX_U16 => out.extend_from_slice(&(n as u16).to_le_bytes()),
                        _ => out.extend_from_slice(&n.to_le_bytes()),
                    }
                }
            }
            Column::Array { offsets, items, .. } => {
                out.extend_from_slice(offsets);
                out.extend_from_slice(items);
            }
        }
    }

    fn mark(&self) -> Mark {
        match self {
            Column::Plain(data) => Mark { values: data.len(), keys: 0, total: 0 },
            Column::LowCardinality { dictionary, rows } => {
                Mark { values: rows.len(), keys: dictionary.spans.len(), total: 0 }
            }
            Column::Array { offsets, total, items } => Mark { values: offsets.len(), keys: items.len(), total: *total },
        }
    }

    /// Back to how the column was at `mark`.
    fn rollback(&mut self, mark: Mark) {
        match self {
            Column::Plain(data) => data.truncate(mark.values),
            Column::LowCardinality { dictionary, rows } => {
                rows.truncate(mark.values);
                dictionary.truncate(mark.keys);
            }
            Column::Array { offsets, total, items } => {
                offsets.truncate(mark.values);
                items.truncate(mark.keys);
                *total = mark.total;
            }
        }
    }

    fn clear(&mut self) {
        match self {
            Column::Plain(data) => data.clear(),
            Column::LowCardinality { dictionary, rows } => {
                dictionary.clear();
                rows.clear();
            }
            Column::Array { offsets, total, items } => {
                offsets.clear();
                *total = 0;
                items.clear();
            }
        }
    }
}

/// `RowBinary` rows in, `Native` blocks out.
pub struct Block {
    schema: &'static [(&'static str, ColumnType)],
    columns: Vec<Column>,
    rows: u64,
    /// `RowBinary` bytes taken in since the last [`Block::write`].
    bytes: usize,
    /// Where each column was before the row being added.
    marks: Vec<Mark>,
}

impl Block {
    /// An empty block of `schema`'s columns (names and types, in the order
    /// the rows hold them).
    pub fn new(schema: &'static [(&'static str, ColumnType)]) -> Block {
        let columns = schema.iter().map(|&(_, ty)| Column::new(ty)).collect();
        Block { schema, columns, rows: 0, bytes: 0, marks: Vec::with_capacity(schema.len()) }
    }

    /// Add one row: the `RowBinary` values of every column in order, given
    /// as consecutive pieces that each hold whole values. A row that does
    /// not fit the schema is refused whole; the block is unchanged.
    /// (One pass: each column notes where it was, and a row that fails
    /// is taken back. Checking every row first cost 45 % more:
    /// `cargo bench --bench hot_path -- store/native`.)
    pub fn push(&mut self, pieces: &[&[u8]]) -> Result<(), RowError> {
        let (columns, marks) = (&mut self.columns, &mut self.marks);
        marks.clear();
        let walked = walk(self.schema, pieces, |i, field| {
            marks.push(columns[i].mark());
            columns[i].push(field);
        });
        if let Err(e) = walked {
            columns.iter_mut().zip(marks.iter()).for_each(|(column, &mark)| column.rollback(mark));
            return Err(e);
        }
        self.rows += 1;
        self.bytes += pieces.iter().map(|p| p.len()).sum::<usize>();
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// `RowBinary` bytes added since the block was last written.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Append the block to `out` (nothing if it has no rows) and start
    /// the next one empty.
    pub fn write(&mut self, out: &mut Vec<u8>) {
        if self.rows > 0 {
            leb128(out, self.schema.len() as u64);
            leb128(out, self.rows);
            for (&(name, ty), column) in self.schema.iter().zip(&self.columns) {
                for text in [name, ty.sql()] {
                    leb128(out, text.len() as u64);
                    out.extend_from_slice(text.as_bytes());
                }
                column.write(out);
            }
        }
        self.columns.iter_mut().for_each(Column::clear);
        (self.rows, self.bytes) = (0, 0);
    }
}

/// Read one row, handing each column's value to `each`.
fn walk<'r>(
    schema: &[(&'static str, ColumnType)],
    pieces: &[&'r [u8]],
    mut each: impl FnMut(usize, Field<'r>),
) -> Result<(), RowError> {
    let mut cursor = Cursor::new(pieces);
    for (i, &(name, ty)) in schema.iter().enumerate() {
        each(i, cursor.field(ty).ok_or(RowError::Truncated(name))?);
    }
    match cursor.left() {
        0 => Ok(()),
        n => Err(RowError::Trailing(n)),
    }
}

/// Bytes of `n` as LEB128.
fn leb128_len(n: usize) -> usize {
    (usize::BITS - n.max(1).leading_zeros()).div_ceil(7) as usize
}

/// A LEB128 number at the start of `buf` and its length in bytes.
fn read_leb128(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &[(&str, ColumnType)] = &[
        ("s", ColumnType::String),
        ("lc", ColumnType::LowCardinalityString),
        ("n", ColumnType::UInt16),
        ("a", ColumnType::ArrayString),
    ];

    fn string(out: &mut Vec<u8>, s: &str) {
        leb128(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }

    fn row(s: &str, lc: &str, n: u16, a: &[&str]) -> Vec<u8> {
        let mut out = vec![];
        string(&mut out, s);
        string(&mut out, lc);
        out.extend_from_slice(&n.to_le_bytes());
        leb128(&mut out, a.len() as u64);
        a.iter().for_each(|x| string(&mut out, x));
        out
    }

    fn header(out: &mut Vec<u8>, name: &str, ty: &str) {
        string(out, name);
        string(out, ty);
    }

    /// Byte for byte what ClickHouse 18.16 answers to
    /// `SELECT … FORMAT Native` for the same values.
    #[test]
    fn a_block_is_laid_out_as_clickhouse_writes_it() {
        let mut block = Block::new(SCHEMA);
        block.push(&[&row("ab", "x", 7, &["k"])]).expect("row 1");
        block.push(&[&row("", "", 258, &[])]).expect("row 2");
        block.push(&[&row("c", "x", 1, &["l", "mn"])]).expect("row 3");
        let mut got = vec![];
        block.write(&mut got);

        let mut want = vec![4, 3];
        header(&mut want, "s", "String");
        want.extend_from_slice(b"\x02ab\x00\x01c");
        header(&mut want, "lc", "LowCardinality(String)");
        for word in [1u64, 0x600, 2] {
            want.extend_from_slice(&word.to_le_bytes());
        }
        want.extend_from_slice(b"\x00\x01x");
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(&[1, 0, 1]);
        header(&mut want, "n", "UInt16");
        want.extend_from_slice(&[7, 0, 2, 1, 1, 0]);
        header(&mut want, "a", "Array(String)");
        for offset in [1u64, 1, 3] {
            want.extend_from_slice(&offset.to_le_bytes());
        }
        want.extend_from_slice(b"\x01k\x01l\x02mn");
        assert_eq!(got, want);

        // Written blocks start over.
        assert_eq!((block.rows(), block.bytes()), (0, 0));
        let mut empty = vec![];
        block.write(&mut empty);
        assert!(empty.is_empty(), "an empty block writes nothing");
    }

    #[test]
    fn values_may_come_in_pieces() {
        let whole = row("page", "Firefox", 3, &["a", "b"]);
        let mut one = Block::new(SCHEMA);
        one.push(&[&whole]).expect("whole");
        let tail = 3u16.to_le_bytes();
        let mut head = vec![];
        string(&mut head, "page");
        string(&mut head, "Firefox");
        let mut array = vec![2];
        string(&mut array, "a");
        string(&mut array, "b");
        let mut split = Block::new(SCHEMA);
        split.push(&[&head, &[], &tail, &array]).expect("pieces");
        let (mut a, mut b) = (vec![], vec![]);
        one.write(&mut a);
        split.write(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn a_bad_row_is_refused_and_leaves_the_block_unchanged() {
        let mut block = Block::new(SCHEMA);
        block.push(&[&row("ok", "x", 1, &[])]).expect("good row");
        let good = row("bad", "y", 2, &["z"]);
        assert_eq!(block.push(&[&good[..good.len() - 1]]), Err(RowError::Truncated("a")));
        assert_eq!(block.push(&[&good[..5]]), Err(RowError::Truncated("lc")));
        let mut long = good.clone();
        long.push(0);
        assert_eq!(block.push(&[&long]), Err(RowError::Trailing(1)));
        // A length prefix claiming more than there is.
        assert_eq!(block.push(&[&[0xff, 0xff, 0xff, 0xff, 0x0f, b'a']]), Err(RowError::Truncated("s")));
        assert_eq!(block.push(&[&[0x80; 11]]), Err(RowError::Truncated("s")));

        let mut only = Block::new(SCHEMA);
        only.push(&[&row("ok", "x", 1, &[])]).expect("good row");
        let (mut a, mut b) = (vec![], vec![]);
        block.write(&mut a);
        only.write(&mut b);
        assert_eq!(a, b, "refused rows left nothing behind");
    }

    #[test]
    fn the_index_width_follows_the_number_of_distinct_values() {
        const LC: &[(&str, ColumnType)] = &[("lc", ColumnType::LowCardinalityString)];
        let flags_of = |distinct: usize| {
            let mut block = Block::new(LC);
            for i in 0..distinct {
                let mut r = vec![];
                string(&mut r, &format!("v{i}"));
                block.push(&[&r]).expect("row");
            }
            let mut out = vec![];
            block.write(&mut out);
            // Column and row counts, name, type and version, then the flags.
            let at = 1 + leb128_len(distinct) + (1 + 2) + (1 + 22) + 8;
            let flags = u64::from_le_bytes(out[at..at + 8].try_into().expect("8 bytes"));
            let keys = u64::from_le_bytes(out[at + 8..at + 16].try_into().expect("8 bytes"));
            (flags, keys, out.len())
        };
        // With the empty default, 255 values make 256 keys: one byte each.
        assert_eq!(flags_of(255).0, 0x600);
        assert_eq!(flags_of(255).1, 256);
        assert_eq!(flags_of(256).0, 0x601);
        let (flags, keys, _) = flags_of(70_000);
        assert_eq!((flags, keys), (0x602, 70_001));
    }
}
