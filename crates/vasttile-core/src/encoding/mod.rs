//! Output: PNG encoding and decoding ([`png`]) and text previews for psql ([`preview`]).
pub mod png;
pub mod preview;
