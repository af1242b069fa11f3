//! What pyramids store is compressed by the extension with zstd (TOAST then stores it as it
//! is), and read back as untrusted bytes: a frame inflates only to the size its header
//! declares, and only up to a cap. Words of 64 bits go in byte planes (every word's lowest
//! byte, then every second byte, ...): nearby counts, ranks and breakpoints share their high
//! bytes, and zstd finds those repeats only when they sit together.

use std::cell::RefCell;

thread_local! {
    // One context of each kind per thread, kept: making one costs more than a tile.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// `bytes` as one zstd frame (level 3) that declares its content size.
pub fn compress(bytes: &[u8]) -> Vec<u8> {
    COMPRESSOR.with_borrow_mut(|c| {
        c.get_or_insert_with(|| zstd::bulk::Compressor::new(3).expect("a zstd context"))
            .compress(bytes)
            .expect("zstd compresses any bytes in memory")
    })
}

/// The content of zstd `frame`: `None` unless its header declares a size of at most `cap`
/// and it inflates to exactly that (so at most `cap` bytes are ever reserved).
pub fn inflate(frame: &[u8], cap: usize) -> Option<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(frame).ok()??;
    if size > cap as u64 {
        return None;
    }
    let out = DECOMPRESSOR.with_borrow_mut(|d| {
        if d.is_none() {
            *d = zstd::bulk::Decompressor::new().ok();
        }
        d.as_mut()?.decompress(frame, size as usize).ok()
    })?;
    (out.len() as u64 == size).then_some(out)
}

/// `words` as eight planes of `words.len()` bytes each.
pub fn to_planes(words: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(words.len() * 8);
    for plane in 0..8 {
        out.extend(words.iter().map(|w| (w >> (8 * plane)) as u8));
    }
    out
}

/// The words of [`to_planes`]; `None` unless `bytes` holds a whole number of words.
pub fn from_planes(bytes: &[u8]) -> Option<Vec<u64>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    let n = bytes.len() / 8;
    Some(
        (0..n)
            .map(|i| (0..8).fold(0u64, |w, b| w | (bytes[b * n + i] as u64) << (8 * b)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_round_trip() {
        let words = [0u64, 1, u64::MAX, 0x0102_0304_0506_0708, 1.5f64.to_bits()];
        assert_eq!(from_planes(&to_planes(&words)).unwrap(), words);
        assert!(from_planes(&[0; 7]).is_none());
    }

    #[test]
    fn frames_inflate_only_within_their_cap_and_declared_size() {
        let data = vec![7u8; 10_000];
        let frame = compress(&data);
        assert_eq!(inflate(&frame, 10_000).unwrap(), data);
        assert!(inflate(&frame, 9_999).is_none());
        assert!(inflate(&frame[..frame.len() - 1], 10_000).is_none());
        assert!(inflate(b"not a frame", 10_000).is_none());
    }
}
