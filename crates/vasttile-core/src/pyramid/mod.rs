//! Zoom pyramids of heat: base tiles, parents summed 2x2, and the CDF normalisation across
//! neighbouring tiles that keeps them seamless ([`build`], [`cdf`]).
pub mod build;
pub mod cdf;
pub mod levels;
pub mod spill;
pub mod store;
