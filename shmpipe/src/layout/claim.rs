//! A side's claim word: who holds the producer or consumer side of a ring.

/// A side's claim, packed into one `u64` so that taking it is a single
/// compare-and-swap:
///
/// ```text
/// bits 63..62  state: 0 vacant, 1 attached, 2 closed
/// bits 61..56  generation: +1 (mod 64) on every claim of this side, so a
///              new session of the same process is a different word
/// bits 55..34  pid (22 bits: Linux pids stay below PID_MAX_LIMIT = 2^22)
/// bits 33..0   start time of that process, clock ticks after boot
///              (/proc/PID/stat field 22), modulo 2^34, telling a
///              recycled pid apart
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Claim(pub(crate) u64);

/// Nobody has held this side yet.
pub(crate) const STATE_VACANT: u64 = 0;
/// A process holds this side (and may have died since).
pub(crate) const STATE_ATTACHED: u64 = 1;
/// The last holder dropped its handle.
pub(crate) const STATE_CLOSED: u64 = 2;

const GEN_BITS: u32 = 6;
const PID_BITS: u32 = 22;
const START_BITS: u32 = 34;
/// The bits of a start time a claim keeps; compare start times through it.
pub(crate) const START_MASK: u64 = (1 << START_BITS) - 1;
const PID_MASK: u64 = (1 << PID_BITS) - 1;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
const GEN_SHIFT: u32 = PID_BITS + START_BITS;
const STATE_SHIFT: u32 = GEN_SHIFT + GEN_BITS;

impl Claim {
    pub(crate) fn new(state: u64, pid: u32, start: u64) -> Claim {
        Claim(
            (state << STATE_SHIFT)
                | ((u64::from(pid) & PID_MASK) << START_BITS)
                | (start & START_MASK),
        )
    }

    pub(crate) fn state(self) -> u64 {
        self.0 >> STATE_SHIFT
    }

    pub(crate) fn generation(self) -> u64 {
        (self.0 >> GEN_SHIFT) & GEN_MASK
    }

    /// The same holder with the generation after `prev`'s.
    pub(crate) fn next_generation_after(self, prev: Claim) -> Claim {
        let gen = (prev.generation() + 1) & GEN_MASK;
        Claim((self.0 & !(GEN_MASK << GEN_SHIFT)) | (gen << GEN_SHIFT))
    }

    pub(crate) fn pid(self) -> u32 {
        ((self.0 >> START_BITS) & PID_MASK) as u32
    }

    pub(crate) fn start(self) -> u64 {
        self.0 & START_MASK
    }

    /// The same holder (and generation) in another state.
    pub(crate) fn with_state(self, state: u64) -> Claim {
        Claim((self.0 & !(3 << STATE_SHIFT)) | (state << STATE_SHIFT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_packs_and_unpacks() {
        let c = Claim::new(STATE_ATTACHED, 4_194_303, (1 << 40) - 1);
        assert_eq!(c.state(), STATE_ATTACHED);
        assert_eq!(c.pid(), 4_194_303);
        assert_eq!(c.start(), START_MASK);
        assert_eq!(c.generation(), 0);
        let next = c.next_generation_after(Claim::new(STATE_CLOSED, 1, 1).next_generation_after(c));
        assert_eq!(next.generation(), 2);
        assert_eq!(
            (next.pid(), next.start(), next.state()),
            (c.pid(), c.start(), c.state())
        );
        let wrapped = c.next_generation_after(Claim(63 << GEN_SHIFT));
        assert_eq!(wrapped.generation(), 0);
        let closed = next.with_state(STATE_CLOSED);
        assert_eq!(closed.state(), STATE_CLOSED);
        assert_eq!(closed.pid(), c.pid());
        assert_eq!(closed.generation(), 2);
        assert_eq!(Claim(0).state(), STATE_VACANT);
        // A hostile value with state 3 decodes without panicking.
        assert_eq!(Claim(u64::MAX).state(), 3);
    }
}
