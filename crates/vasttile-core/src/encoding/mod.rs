//! Output: PNG encoding and decoding ([`png`]), text previews for psql ([`preview`]), and the
//! compressed bytes of stored tiles ([`stored`]).
pub mod png;
pub mod preview;
pub mod stored;
