//! TensorBoard event files: the run's scalars (and the fill-mask probes as text) in the format
//! `tensorboard --logdir runs` follows live, and that W&B and MLflow import.
//!
//! The format is TensorFlow's record file of `Event` protocol buffers: each record is its
//! length (u64, little-endian), the masked CRC32C of those 8 bytes, the bytes, and their masked
//! CRC32C. Only a handful of fields are written (an event's wall time, step, file version and
//! summary; a summary value's tag, float, text tensor and plugin name), so they are encoded
//! here by hand rather than through a protobuf code generator, and read back by the same few
//! lines (`read_events`) for the resume rewrite and the tests. The one maintained-looking Rust
//! writer (`tensorboard-rs`) has not changed since 2022 and pulls in protobuf 2 and an image
//! library.
//!
//! One file per run folder, `tb/events.out.tfevents.bert`, appended across resumes: a resumed
//! run first rewrites it without the records after its checkpoint's step (the steps a killed
//! run did after its last checkpoint are trained again), so each step is in it once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, TrainError};

/// The event file's folder inside the run folder.
pub const TB_DIR: &str = "tb";

/// The event file's name: TensorBoard reads files whose name contains `tfevents`.
pub const EVENT_FILE: &str = "events.out.tfevents.bert";

/// One event as written (and read back): its step, wall time, scalars and texts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The optimiser step.
    pub step: i64,
    /// `Some` only for the first event of a file (`brain.Event:2`).
    pub file_version: Option<String>,
    /// Scalar values by tag.
    pub scalars: Vec<(String, f32)>,
    /// Text values by tag (TensorBoard's text plugin).
    pub texts: Vec<(String, String)>,
}

/// The run's event file, open for appending.
pub struct EventLog {
    path: PathBuf,
    file: File,
}

impl EventLog {
    /// Opens `run_dir/tb/events.out.tfevents.bert` for appending, first dropping every event
    /// after step `keep_upto` and a torn last record; a new file starts with its version event.
    pub fn open(run_dir: &Path, keep_upto: u64) -> Result<Self> {
        let dir = run_dir.join(TB_DIR);
        bert_fsutil::create_dir_all(&dir)?;
        let path = dir.join(EVENT_FILE);
        let mut kept = Vec::new();
        if path.exists() {
            let bytes = std::fs::read(&path).map_err(TrainError::io("reading", &path))?;
            for (event, record) in records(&bytes) {
                if event.file_version.is_some() || event.step <= keep_upto as i64 {
                    kept.extend_from_slice(record);
                }
            }
        }
        if kept.is_empty() {
            let version = Event {
                wall_time: now(),
                file_version: Some("brain.Event:2".into()),
                ..Event::default()
            };
            kept = frame(&encode_event(&version));
        }
        bert_fsutil::write_atomic(&path, &kept)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(TrainError::io("opening", &path))?;
        Ok(Self { path, file })
    }

    /// Appends one event with `scalars` (tag, value) at `step`, written through at once so a
    /// dashboard sees it.
    pub fn scalars(&mut self, step: u64, scalars: &[(&str, f64)]) -> Result<()> {
        let event = Event {
            wall_time: now(),
            step: step as i64,
            scalars: scalars
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(|(t, v)| (t.to_string(), *v as f32))
                .collect(),
            ..Event::default()
        };
        self.write(&event)
    }

    /// Appends one event with a text value.
    pub fn text(&mut self, step: u64, tag: &str, text: &str) -> Result<()> {
        let event = Event {
            wall_time: now(),
            step: step as i64,
            texts: vec![(tag.to_string(), text.to_string())],
            ..Event::default()
        };
        self.write(&event)
    }

    fn write(&mut self, event: &Event) -> Result<()> {
        self.file
            .write_all(&frame(&encode_event(event)))
            .map_err(TrainError::io("appending to", &self.path))
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Reads every event of an event file, checking each record's length and CRCs; reading stops
/// at the first torn or damaged record (the tail a kill can leave).
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).map_err(TrainError::io("reading", path))?;
    Ok(records(&bytes).into_iter().map(|(e, _)| e).collect())
}

/// The intact records of an event file, each decoded and as its framed bytes.
fn records(bytes: &[u8]) -> Vec<(Event, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 12 {
        let header = &bytes[at..at + 8];
        let len = u64::from_le_bytes(header.try_into().expect("8 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes"));
        let end = at.saturating_add(12).saturating_add(len).saturating_add(4);
        if crc != masked_crc32c(header) || end > bytes.len() {
            break;
        }
        let data = &bytes[at + 12..at + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[end - 4..end].try_into().expect("4 bytes"));
        if data_crc != masked_crc32c(data) {
            break;
        }
        let Some(event) = decode_event(data) else {
            break;
        };
        out.push((event, &bytes[at..end]));
        at = end;
    }
    out
}

/// A record: length, its masked CRC, the data, its masked CRC.
fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// TensorFlow's masked CRC32C: the checksum rotated and offset, so that a CRC of data that
/// holds CRCs stays well distributed.
fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bytewise from a table.
fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, entry) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x82f6_3b78
                } else {
                    c >> 1
                };
            }
            *entry = c;
        }
        t
    });
    !data.iter().fold(!0u32, |crc, &b| {
        table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

// Protocol-buffer wire format: a key is (field number << 3) | wire type; 0 varint, 1 64-bit,
// 2 length-delimited, 5 32-bit.

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(out, u64::from(field << 3 | wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `Event { wall_time = 1; step = 2; file_version = 3; summary = 5 }`, with `Summary { value =
/// 1 }`, `Value { tag = 1; simple_value = 2; metadata = 9; tensor = 8 }`.
fn encode_event(event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    put_key(&mut out, 1, 1);
    out.extend_from_slice(&event.wall_time.to_le_bytes());
    if event.step != 0 {
        put_key(&mut out, 2, 0);
        put_varint(&mut out, event.step as u64);
    }
    if let Some(v) = &event.file_version {
        put_bytes(&mut out, 3, v.as_bytes());
    }
    if !event.scalars.is_empty() || !event.texts.is_empty() {
        let mut summary = Vec::new();
        for (tag, value) in &event.scalars {
            let mut v = Vec::new();
            put_bytes(&mut v, 1, tag.as_bytes());
            put_key(&mut v, 2, 5);
            v.extend_from_slice(&value.to_le_bytes());
            put_bytes(&mut summary, 1, &v);
        }
        for (tag, text) in &event.texts {
            let mut v = Vec::new();
            put_bytes(&mut v, 1, tag.as_bytes());
            // TensorProto { dtype = 1 (DT_STRING = 7); tensor_shape = 2 { dim = 2 { size = 1 } };
            // string_val = 8 }
            let mut dim = Vec::new();
            put_key(&mut dim, 1, 0);
            put_varint(&mut dim, 1);
            let mut shape = Vec::new();
            put_bytes(&mut shape, 2, &dim);
            let mut tensor = Vec::new();
            put_key(&mut tensor, 1, 0);
            put_varint(&mut tensor, 7);
            put_bytes(&mut tensor, 2, &shape);
            put_bytes(&mut tensor, 8, text.as_bytes());
            put_bytes(&mut v, 8, &tensor);
            // SummaryMetadata { plugin_data = 1 { plugin_name = 1 } }
            let mut plugin = Vec::new();
            put_bytes(&mut plugin, 1, b"text");
            let mut metadata = Vec::new();
            put_bytes(&mut metadata, 1, &plugin);
            put_bytes(&mut v, 9, &metadata);
            put_bytes(&mut summary, 1, &v);
        }
        put_bytes(&mut out, 5, &summary);
    }
    out
}

/// A field read from a message: its number and value.
enum Field<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Fixed32([u8; 4]),
    Bytes(&'a [u8]),
}

/// The fields of a message, in order; `None` when it is malformed.
fn fields(mut data: &[u8]) -> Option<Vec<(u32, Field<'_>)>> {
    fn varint(data: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = data.split_first()?;
            *data = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
    fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if data.len() < n {
            return None;
        }
        let (head, rest) = data.split_at(n);
        *data = rest;
        Some(head)
    }
    let mut out = Vec::new();
    while !data.is_empty() {
        let key = varint(&mut data)?;
        let field = u32::try_from(key >> 3).ok()?;
        let value = match key & 7 {
            0 => Field::Varint(varint(&mut data)?),
            1 => Field::Fixed64(take(&mut data, 8)?.try_into().ok()?),
            2 => {
                let n = usize::try_from(varint(&mut data)?).ok()?;
                Field::Bytes(take(&mut data, n)?)
            }
            5 => Field::Fixed32(take(&mut data, 4)?.try_into().ok()?),
            _ => return None,
        };
        out.push((field, value));
    }
    Some(out)
}

fn decode_event(data: &[u8]) -> Option<Event> {
    let mut event = Event::default();
    for (number, field) in fields(data)? {
        match (number, field) {
            (1, Field::Fixed64(b)) => event.wall_time = f64::from_le_bytes(b),
            (2, Field::Varint(v)) => event.step = v as i64,
            (3, Field::Bytes(b)) => event.file_version = Some(String::from_utf8_lossy(b).into()),
            (5, Field::Bytes(summary)) => {
                for (n, value) in fields(summary)? {
                    let (1, Field::Bytes(value)) = (n, value) else {
                        continue;
                    };
                    decode_value(value, &mut event)?;
                }
            }
            _ => {}
        }
    }
    Some(event)
}

fn decode_value(value: &[u8], event: &mut Event) -> Option<()> {
    let mut tag = String::new();
    let mut scalar = None;
    let mut text = None;
    for (n, f) in fields(value)? {
        match (n, f) {
            (1, Field::Bytes(b)) => tag = String::from_utf8_lossy(b).into(),
            (2, Field::Fixed32(b)) => scalar = Some(f32::from_le_bytes(b)),
            (8, Field::Bytes(tensor)) => {
                for (n, f) in fields(tensor)? {
                    if let (8, Field::Bytes(s)) = (n, f) {
                        text = Some(String::from_utf8_lossy(s).into_owned());
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(v) = scalar {
        event.scalars.push((tag, v));
    } else if let Some(t) = text {
        event.texts.push((tag, t));
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The check value of CRC-32C (RFC 3720, and every CRC catalogue).
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn the_version_record_starts_as_tensorflows_files_do() {
        // `Event { wall_time, file_version: "brain.Event:2" }` is 24 bytes, and every event file
        // TensorFlow or PyTorch writes starts with that length and its masked CRC32C:
        // 18 00 00 00 00 00 00 00 a3 7f 4b 22.
        let version = Event {
            wall_time: 1.0,
            file_version: Some("brain.Event:2".into()),
            ..Event::default()
        };
        let framed = frame(&encode_event(&version));
        assert_eq!(&framed[..12], b"\x18\0\0\0\0\0\0\0\xa3\x7f\x4b\x22");
        let e = &records(&framed)[0].0;
        assert_eq!(e.file_version.as_deref(), Some("brain.Event:2"));
        assert_eq!(e.wall_time, 1.0);
    }

    #[test]
    fn events_round_trip_and_a_torn_tail_is_dropped() {
        let e = Event {
            wall_time: 12.5,
            step: 300,
            file_version: None,
            scalars: vec![("train/loss".into(), 2.25), ("train/lr".into(), 1e-4)],
            texts: vec![("fill_mask/0".into(), "century (0.88)".into())],
        };
        let mut bytes = frame(&encode_event(&e));
        bytes.extend_from_slice(&frame(&encode_event(&e))[..20]);
        let read = records(&bytes);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].0, e);
        // A flipped bit in the data fails its CRC.
        let mut damaged = frame(&encode_event(&e));
        damaged[15] ^= 1;
        assert!(records(&damaged).is_empty());
    }
}
