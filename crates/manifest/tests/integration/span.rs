//! The seek index: which compressed bytes hold an entry.

use cairn_integrity::SigningKey;
use cairn_manifest::*;

use super::fixture::sample;

#[test]
fn spans_follow_frames() {
    let key = SigningKey::from_seed(&[3; 32]);
    let m = sample(&key);
    m.validate().unwrap();
    // data/a.txt starts at raw 1024 in frame 0 and ends where data/hard starts
    // (raw 4106, frame 1).
    assert_eq!(m.raw_offset(1), 1024);
    assert_eq!(m.raw_offset(2), 4106);
    assert_eq!(
        m.span(1),
        Span {
            compressed: 0..500,
            skip: 1024,
            raw_len: 4106 - 1024
        }
    );
    // The last entry runs to the end of the data region.
    assert_eq!(
        m.span(4),
        Span {
            compressed: 500..600,
            skip: 0,
            raw_len: 2048
        }
    );
    // The first entry ends exactly at a frame boundary? No: at 1024, inside frame 0.
    assert_eq!(
        m.span(0),
        Span {
            compressed: 0..300,
            skip: 0,
            raw_len: 1024
        }
    );
    assert_eq!(m.frame_holding(4095), Some(0));
    assert_eq!(m.frame_holding(4096), Some(1));
    assert_eq!(m.frame_holding(10240), None);
    assert_eq!(m.data_end(), 10240);
    assert_eq!(m.data_compressed_end(), 600);
}

#[test]
fn component_lookup() {
    let key = SigningKey::from_seed(&[3; 32]);
    let m = sample(&key);
    let data = ComponentName::parse("data").unwrap();
    assert_eq!(m.entries_of(&data).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert_eq!(m.component(&data).unwrap().entries, 4);
    assert_eq!(m.find(&EntryPath::parse(b"db/app.db").unwrap()), Some(4));
    assert_eq!(m.find(&EntryPath::parse(b"db/none").unwrap()), None);
}
