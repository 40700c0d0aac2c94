//! [`Side`]: the producer or the consumer end of a ring.

use std::fmt;

/// Which side of a ring a handle or a claim belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The single writer: [`Producer`](crate::Producer).
    Producer,
    /// The single reader: [`Consumer`](crate::Consumer).
    Consumer,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Producer => "producer",
            Side::Consumer => "consumer",
        })
    }
}
