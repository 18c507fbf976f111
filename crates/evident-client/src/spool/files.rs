//! The spool's files in its directory: numbered segments of framed events (`seg-<N>.log`,
//! append-only), the `cursor` (the position of the first event the server has not acknowledged),
//! the `lock` that keeps a second process out, and `dead-letter.ndjson`.
//!
//! A frame is `len: u32 LE`, `crc32: u32 LE` over the rest, `recorded_at: i64 LE` (Unix
//! microseconds), then `len` bytes of the event's JSON. A frame is durable once the writer's fsync
//! covering it has returned; a crash can leave only a torn frame at the end of the last segment,
//! which [`recover`] cuts off (no `record` call returned for it). The cursor is replaced by
//! write-to-temporary, fsync, rename, fsync of the directory, so it is always one whole position.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// Bytes before a frame's JSON.
pub(super) const FRAME_HEADER: u64 = 16;
/// A frame's JSON is never larger (the server takes events up to 256 KiB); a larger length is
/// damage, not an allocation to make.
pub(super) const MAX_PAYLOAD: u32 = 1 << 20;

/// Where a frame starts: a segment and a byte offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// One spooled event, durable and not yet acknowledged, as the spool counts it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Queued {
    /// When `record` took it, Unix microseconds.
    pub recorded_at: i64,
    /// Its frame's size on disk.
    pub frame_bytes: u64,
}

/// A frame read back.
pub(super) struct Frame {
    pub recorded_at: i64,
    pub payload: Vec<u8>,
}

/// Appends the frame of `payload` to `out`.
pub(super) fn encode(recorded_at: i64, payload: &[u8], out: &mut Vec<u8>) {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&recorded_at.to_le_bytes());
    hasher.update(payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(&recorded_at.to_le_bytes());
    out.extend_from_slice(payload);
}

/// What is at an offset of a segment.
enum Read {
    Frame(Frame),
    /// The segment ends exactly here.
    End,
    /// A torn or damaged frame, and why.
    Damaged(String),
}

fn read_at(file: &File, offset: u64) -> io::Result<Read> {
    let mut header = [0u8; FRAME_HEADER as usize];
    let len = file.metadata()?.len();
    if offset == len {
        return Ok(Read::End);
    }
    if offset + FRAME_HEADER > len {
        return Ok(Read::Damaged(format!("a frame header cut off at byte {offset}")));
    }
    file.read_exact_at(&mut header, offset)?;
    let payload_len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let recorded_at = i64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if payload_len > MAX_PAYLOAD || offset + FRAME_HEADER + u64::from(payload_len) > len {
        return Ok(Read::Damaged(format!("a frame at byte {offset} runs past the end")));
    }
    let mut payload = vec![0u8; payload_len as usize];
    file.read_exact_at(&mut payload, offset + FRAME_HEADER)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&recorded_at.to_le_bytes());
    hasher.update(&payload);
    if hasher.finalize() != crc {
        return Ok(Read::Damaged(format!("the frame at byte {offset} fails its checksum")));
    }
    Ok(Read::Frame(Frame { recorded_at, payload }))
}

pub(super) fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("seg-{segment:020}.log"))
}

/// The segments in `dir`, in order.
pub(super) fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        let number = name.strip_prefix("seg-").and_then(|rest| rest.strip_suffix(".log"));
        if let Some(Ok(number)) = number.map(str::parse) {
            found.push(number);
        }
    }
    found.sort_unstable();
    Ok(found)
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates segment `segment` (empty) and makes its name durable.
pub(super) fn create_segment(dir: &Path, segment: u64) -> io::Result<File> {
    let file = OpenOptions::new().create(true).append(true).open(segment_path(dir, segment))?;
    sync_dir(dir)?;
    Ok(file)
}

fn read_cursor(dir: &Path) -> io::Result<Option<Position>> {
    let text = match fs::read_to_string(dir.join("cursor")) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(segment)), Some(Ok(offset)), None) => Ok(Some(Position { segment, offset })),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, format!("the cursor file holds {text:?}"))),
    }
}

/// Durably moves the cursor to `position`.
pub(super) fn write_cursor(dir: &Path, position: Position) -> io::Result<()> {
    let temporary = dir.join("cursor.tmp");
    let mut file = File::create(&temporary)?;
    writeln!(file, "{} {}", position.segment, position.offset)?;
    file.sync_all()?;
    fs::rename(&temporary, dir.join("cursor"))?;
    sync_dir(dir)
}

/// Removes the segments before `segment` (every event in them is acknowledged).
pub(super) fn remove_before(dir: &Path, segment: u64) -> io::Result<()> {
    for old in segments(dir)?.into_iter().filter(|&old| old < segment) {
        fs::remove_file(segment_path(dir, old))?;
    }
    Ok(())
}

/// What a directory holds after a restart.
#[derive(Debug)]
pub(super) struct Recovered {
    pub cursor: Position,
    pub queue: VecDeque<Queued>,
    /// The last segment, open for appending, and its length.
    pub tail: File,
    pub tail_segment: u64,
    pub tail_len: u64,
}

/// Reads the directory back: the events after the cursor, the torn end of the last segment cut off.
/// Damage anywhere else is an error (those frames were fsynced before the next segment began).
pub(super) fn recover(dir: &Path) -> io::Result<Recovered> {
    let found = segments(dir)?;
    let first = found.first().copied().unwrap_or(0);
    let last = found.last().copied().unwrap_or(0);
    let mut cursor = read_cursor(dir)?.unwrap_or(Position { segment: first, offset: 0 });
    if cursor.segment < first {
        cursor = Position { segment: first, offset: 0 };
    }
    remove_before(dir, cursor.segment)?;
    let mut queue = VecDeque::new();
    let mut tail_len = 0;
    for segment in found.into_iter().filter(|&segment| segment >= cursor.segment) {
        let file = File::open(segment_path(dir, segment))?;
        let mut offset = if segment == cursor.segment { cursor.offset } else { 0 };
        loop {
            match read_at(&file, offset)? {
                Read::Frame(frame) => {
                    let frame_bytes = FRAME_HEADER + frame.payload.len() as u64;
                    queue.push_back(Queued { recorded_at: frame.recorded_at, frame_bytes });
                    offset += frame_bytes;
                }
                Read::End => break,
                Read::Damaged(_) if segment == last => {
                    // A torn tail: no `record` returned for it. Cut it off durably.
                    let file = OpenOptions::new().write(true).open(segment_path(dir, segment))?;
                    file.set_len(offset)?;
                    file.sync_all()?;
                    break;
                }
                Read::Damaged(why) => {
                    let path = segment_path(dir, segment);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {why}", path.display()),
                    ));
                }
            }
        }
        tail_len = offset;
    }
    let tail = if segment_path(dir, last).exists() {
        OpenOptions::new().append(true).open(segment_path(dir, last))?
    } else {
        create_segment(dir, last)?
    };
    Ok(Recovered { cursor, queue, tail, tail_segment: last, tail_len })
}

/// Reads durable frames in order from a position (the sender's view of the segments).
pub(super) struct Reader {
    dir: PathBuf,
    position: Position,
    open: Option<(u64, File)>,
}

impl Reader {
    pub fn new(dir: &Path, position: Position) -> Reader {
        Reader { dir: dir.to_owned(), position, open: None }
    }

    /// The next frame at `position`, which the caller knows to be durable (so it is whole).
    fn frame_at(&mut self, position: Position) -> io::Result<(Frame, Position)> {
        let mut position = position;
        loop {
            if self.open.as_ref().is_none_or(|(segment, _)| *segment != position.segment) {
                let file = File::open(segment_path(&self.dir, position.segment))?;
                self.open = Some((position.segment, file));
            }
            let (_, file) = self.open.as_ref().expect("opened above");
            match read_at(file, position.offset)? {
                Read::Frame(frame) => {
                    let next = position.offset + FRAME_HEADER + frame.payload.len() as u64;
                    return Ok((frame, Position { segment: position.segment, offset: next }));
                }
                // The writer moved on to the next segment after this one filled.
                Read::End => position = Position { segment: position.segment + 1, offset: 0 },
                Read::Damaged(why) => return Err(io::Error::new(io::ErrorKind::InvalidData, why)),
            }
        }
    }

    /// Reads `count` frames from the current position without moving it; answers them and the
    /// position after the last.
    pub fn peek(&mut self, count: usize) -> io::Result<(Vec<Frame>, Position)> {
        let mut frames = Vec::with_capacity(count);
        let mut position = self.position;
        for _ in 0..count {
            let (frame, next) = self.frame_at(position)?;
            frames.push(frame);
            position = next;
        }
        Ok((frames, position))
    }

    /// Moves past frames the server acknowledged.
    pub fn advance(&mut self, position: Position) {
        self.position = position;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_frames(dir: &Path, segment: u64, payloads: &[&str]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (at, payload) in payloads.iter().enumerate() {
            encode(at as i64, payload.as_bytes(), &mut bytes);
        }
        fs::write(segment_path(dir, segment), &bytes).unwrap();
        bytes
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = write_frames(dir.path(), 0, &["{\"a\":1}", "{\"b\":2}"]);
        for cut in [bytes.len() - 1, bytes.len() - 8, bytes.len() / 2 + 3] {
            fs::write(segment_path(dir.path(), 0), &bytes[..cut]).unwrap();
            let recovered = recover(dir.path()).unwrap();
            assert_eq!(recovered.queue.len(), 1, "cut at {cut}");
            assert_eq!(recovered.tail_len, FRAME_HEADER + 7);
            assert_eq!(fs::metadata(segment_path(dir.path(), 0)).unwrap().len(), FRAME_HEADER + 7);
        }
    }

    #[test]
    fn damage_before_the_last_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = write_frames(dir.path(), 0, &["{\"a\":1}", "{\"b\":2}"]);
        write_frames(dir.path(), 1, &["{\"c\":3}"]);
        bytes[20] ^= 1;
        fs::write(segment_path(dir.path(), 0), &bytes).unwrap();
        let err = recover(dir.path()).expect_err("damage is refused");
        assert!(err.to_string().contains("fails its checksum"), "{err}");
    }

    #[test]
    fn the_cursor_skips_acknowledged_frames_and_removes_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        write_frames(dir.path(), 0, &["{\"a\":1}"]);
        write_frames(dir.path(), 1, &["{\"b\":2}", "{\"c\":3}"]);
        write_cursor(dir.path(), Position { segment: 1, offset: FRAME_HEADER + 7 }).unwrap();
        let recovered = recover(dir.path()).unwrap();
        assert_eq!(recovered.queue.len(), 1);
        assert_eq!(segments(dir.path()).unwrap(), [1]);
        let mut reader = Reader::new(dir.path(), recovered.cursor);
        let (frames, _) = reader.peek(1).unwrap();
        assert_eq!(frames[0].payload, b"{\"c\":3}");
    }

    #[test]
    fn a_malformed_cursor_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cursor"), "seven 3\n").unwrap();
        let err = recover(dir.path()).expect_err("refused");
        assert!(err.to_string().contains("cursor file"), "{err}");
    }
}
