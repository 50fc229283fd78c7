//! The store's side of ingest's [`EventSink`]: encode, then spool.
//!
//! Each event is encoded to a `RowBinary` row the moment it is accepted, so
//! what waits in the spool (on disk or in memory) is a compact row of a few
//! hundred bytes rather than a tree of strings; the writer only rearranges
//! a batch's rows into columns ([`super::native`]).

use super::row::EventRow;
use super::rowbinary;
use crate::event::Event;
use crate::ingest::EventSink;
use crate::spool::{Ack, AppendError, Entry, Spool};

/// Appends encoded events to the spool.
pub struct SpoolSink {
    pub spool: Spool,
}

/// Add `event` to `entry` as one encoded row.
pub fn encode_event(event: &Event, entry: &mut Entry) -> Result<(), rowbinary::EncodeError> {
    let ts = u32::try_from(event.ts.unix_timestamp()).unwrap_or(0);
    entry.record(ts, |buf| rowbinary::encode(&EventRow::from(event), buf))
}

impl EventSink for SpoolSink {
    fn submit(&self, events: &[Event]) -> Result<Ack, AppendError> {
        let mut entry = Entry::with_capacity(512 * events.len());
        for event in events {
            // The row type has only encodable fields; this cannot fail
            // unless someone adds a map or an enum to it.
            encode_event(event, &mut entry).map_err(|e| AppendError::Io(std::io::Error::other(e)))?;
        }
        self.spool.append(entry)
    }
}
