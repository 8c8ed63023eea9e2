//! certhub's pure domain: types and rules with no I/O and no async runtime.
//!
//! Everything here is deterministic given its inputs (time is passed in), so the
//! rules of `design.md` can be unit- and property-tested without a database.

pub mod names;
pub mod product;
pub mod subscription;
pub mod time;

pub use time::Timestamp;
