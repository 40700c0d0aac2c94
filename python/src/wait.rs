//! Timeouts and the blocking wait: released from the GIL, in slices short
//! enough for Ctrl-C to interrupt it promptly.

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The longest a blocking call stays out of the interpreter before it
/// looks for a pending signal (Ctrl-C): `KeyboardInterrupt` arrives within
/// about this long.
pub(crate) const SIGNAL_SLICE: Duration = Duration::from_millis(50);

/// How often a blocked handle checks that its peer lives. The library
/// checks once per heartbeat *within* one blocking call, so it must be
/// shorter than a slice, or no slice would ever check (the library's
/// default, 100 ms, is longer): a dead peer is noticed within one slice.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(40);

/// Messages at least this long are copied with the GIL released, so that
/// other Python threads run meanwhile; shorter copies are cheaper than
/// releasing and taking back the GIL.
pub(crate) const DETACH_COPY: usize = 64 * 1024;

/// The deadline for a `timeout` argument in seconds: `None` waits as long
/// as it takes (so does a timeout too large to represent), `0` tries once.
pub(crate) fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    let Some(t) = timeout else { return Ok(None) };
    if t.is_nan() || t < 0.0 {
        return Err(PyValueError::new_err(format!(
            "timeout must be a number of seconds >= 0, or None to wait as long as it takes \
             (got {t})"
        )));
    }
    Ok(Duration::try_from_secs_f64(t)
        .ok()
        .and_then(|d| Instant::now().checked_add(d)))
}

/// Waits until `ready(slice_deadline)` succeeds or fails with something
/// other than a timeout, or `deadline` passes. Each call of `ready` runs
/// with the GIL released and waits at most [`SIGNAL_SLICE`]; between
/// slices, pending signals run their handlers, so Ctrl-C raises
/// `KeyboardInterrupt` here (and the handle stays usable: nothing was
/// taken from or put into the ring).
///
/// Returns `Ok(Err(e))` for the library's own errors, including the final
/// timeout, and `Err` for a Python exception from a signal handler.
pub(crate) fn wait_ready<E: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    is_timeout: impl Fn(&E) -> bool,
    mut ready: impl FnMut(Instant) -> Result<(), E> + Send,
) -> PyResult<Result<(), E>> {
    loop {
        let now = Instant::now();
        let slice = now.checked_add(SIGNAL_SLICE).unwrap_or(now);
        let (until, last) = match deadline {
            Some(d) if d <= slice => (d, true),
            _ => (slice, false),
        };
        let r = py.detach(|| ready(until));
        match r {
            Err(e) if is_timeout(&e) && !last => py.check_signals()?,
            r => return Ok(r),
        }
    }
}
