//! Listing: the channels in the segment directory and the readers of a channel, found
//! without attaching to anything (headers, tables and lock bytes are only read). What
//! `frame-stats --list` / `--readers`, `shmframes.channels()` and `readers()` show.

use crate::control::{self, Origin};
use crate::error::{Error, Result, Violation};
use crate::format::FrameShape;
use crate::reader::slot_frame;
use crate::segment::Segment;
use crate::table::TableMemory;
use crate::ProducerState;

/// A reader of a framed channel, as its place in the channel's reader table says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Its place in the table (0-based).
    pub place: usize,
    /// Its process id (as seen in its own PID namespace).
    pub pid: u32,
    /// Whether it is lossless.
    pub lossless: bool,
    /// Frames it read.
    pub frames_read: u64,
    /// Frames it lost.
    pub dropped: u64,
    /// Frames published that it has not read yet.
    pub lag: u64,
    /// Frames it holds now.
    pub held: u32,
}

/// The live readers of a framed channel's table (the dead are left out: their lock is free).
pub(crate) fn live_readers(seg: &Segment, table: &TableMemory) -> Vec<ReaderInfo> {
    let view = table.view();
    let count = view.count();
    (0..view.max_readers())
        .filter_map(|r| {
            let e = view.reader_info(r);
            (e.active && e.next != crate::table::NOT_READING && seg.entry_alive(r)).then_some(
                ReaderInfo {
                    place: r,
                    pid: e.pid,
                    lossless: e.lossless,
                    frames_read: e.read,
                    dropped: e.dropped,
                    lag: count.saturating_sub(e.next),
                    held: e.held,
                },
            )
        })
        .collect()
}

/// A channel found by [`channels`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Its name.
    pub name: String,
    /// Made by shmframes: framed (frames with headers) or raw; `false` for another producer's
    /// segment (cpp_py_shmbuf's), of which only the ring is known.
    pub ours: bool,
    /// Frames carry headers (shape, format, timestamps).
    pub framed: bool,
    /// What its producer is doing: live, ended (the stream was closed), gone (it died), or
    /// unknown (a producer that takes no lock).
    pub producer: ProducerState,
    /// The frames' shape, when a frame says it (framed channels with a frame published).
    pub shape: Option<FrameShape>,
    /// Frames published (framed channels with a reader table).
    pub frames_published: Option<u64>,
    /// Readers attached now (framed channels with a reader table).
    pub readers: Option<usize>,
    /// Data-area capacity in bytes.
    pub capacity: u32,
    /// The processes that have it open, `(pid, command name)`: its producer and readers (the
    /// kernel does not say which is which; a framed channel's readers are in `readers_of`).
    pub open_by: Vec<(u32, String)>,
}

/// Every channel in the segment directory (`/dev/shm` on Linux), shmframes' and other
/// producers' (a valid ring header is enough), sorted by name, without attaching to any: headers,
/// tables and lock bytes are only read. Files that are not channels are left out.
///
/// # Errors
/// When the directory cannot be listed.
pub fn channels() -> Result<Vec<ChannelInfo>> {
    let mut found: Vec<ChannelInfo> =
        crate::segment::channel_names()?.into_iter().filter_map(|n| channel_info(&n)).collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

fn channel_info(name: &str) -> Option<ChannelInfo> {
    let seg = Segment::open(name).ok()?;
    let reserved = seg.ring().reserved();
    let origin = control::origin(reserved).ok()?;
    let closed = control::is_closed(reserved);
    let (ours, framed, table) = match origin {
        Origin::Foreign => (false, false, false),
        Origin::Ours { framed, table, .. } => (true, framed, table),
    };
    let producer = match (ours, closed) {
        (false, _) => ProducerState::Unknown,
        (true, true) => ProducerState::Ended,
        (true, false) if seg.producer_alive() => ProducerState::Live,
        (true, false) => ProducerState::Gone,
    };
    let mut info = ChannelInfo {
        name: seg.name().to_owned(),
        ours,
        framed,
        producer,
        shape: None,
        frames_published: None,
        readers: None,
        capacity: seg.ring().capacity(),
        open_by: seg.other_users(),
    };
    if table {
        if let Ok(t) = seg.table() {
            let view = t.view();
            info.frames_published = Some(view.count());
            info.readers = Some(live_readers(&seg, &t).len());
            info.shape = view
                .some_frame_slot()
                .and_then(|k| slot_frame(&seg, t.geometry(), k).ok())
                .and_then(|(h, _, _)| h.shape);
        }
    }
    Some(info)
}

/// The readers of channel `name` now, without becoming one (what `frame-stats --readers`
/// lists). Empty for a raw channel, whose one consumer has no entry.
///
/// # Errors
/// As opening: [`Error::ChannelNotFound`], [`Error::PermissionDenied`], [`Error::Protocol`].
pub fn readers_of(name: &str) -> Result<Vec<ReaderInfo>> {
    let seg = Segment::open(name)?;
    match control::origin(seg.ring().reserved()) {
        Ok(Origin::Ours { table: true, .. }) => Ok(live_readers(&seg, &seg.table()?)),
        Ok(_) => Ok(Vec::new()),
        Err(found) => Err(Error::protocol(seg.name(), Violation::ExtensionVersion { found })),
    }
}
