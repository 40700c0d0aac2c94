//! The huge-page policy: what `HugePages::{Never, Prefer, Require}` and a
//! page size turn into (a request, or a reason to fall back), and the
//! error that says how to get huge pages.

use super::{hugetlbfs, HugePages, SegmentOptions};
use crate::error::Error;

/// What to ask the kernel for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pages {
    Base,
    Huge { size: u64, required: bool },
}

pub(super) fn huge_error(label: &str, reason: String) -> Error {
    Error::HugePagesUnavailable {
        address: label.to_owned(),
        reason,
    }
}

/// Resolves the huge-page policy into a request, or a fallback reason.
pub(super) fn plan(opts: &SegmentOptions, label: &str) -> Result<(Pages, Option<String>), Error> {
    let required = match opts.huge {
        HugePages::Never => return Ok((Pages::Base, None)),
        HugePages::Prefer => false,
        HugePages::Require => true,
    };
    let size = match opts.huge_size {
        Some(s) if !s.is_power_of_two() || s < 1 << 16 => {
            return Err(Error::config(
                "huge page size",
                s,
                "must be a power of two such as 2097152 (2 MiB) or 1073741824 (1 GiB)",
            ))
        }
        Some(s) => s,
        None => hugetlbfs::default_size().unwrap_or(2 << 20),
    };
    let offered = hugetlbfs::supported_sizes();
    if !offered.contains(&size) {
        let list: Vec<String> = offered.iter().map(|s| hugetlbfs::pretty(*s)).collect();
        let reason = if list.is_empty() {
            "this kernel offers no huge pages (no /sys/kernel/mm/hugepages)".to_owned()
        } else {
            format!(
                "this kernel offers no huge pages of {} (it offers {})",
                hugetlbfs::pretty(size),
                list.join(", ")
            )
        };
        if required {
            return Err(huge_error(label, reason));
        }
        return Ok((Pages::Base, Some(reason)));
    }
    Ok((Pages::Huge { size, required }, None))
}

/// Whether an error means "no huge pages to be had" (so `Prefer` may fall
/// back), as opposed to a failure that would hit base pages too.
pub(super) fn is_huge_shortage(e: &Error) -> Option<&str> {
    match e {
        Error::HugePagesUnavailable { reason, .. } => Some(reason),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(miri))] // reads /sys
    #[test]
    fn plans() {
        let mut o = SegmentOptions::default();
        assert_eq!(plan(&o, "x").unwrap(), (Pages::Base, None));
        o.huge = HugePages::Require;
        o.huge_size = Some(3 << 20);
        assert!(matches!(plan(&o, "x"), Err(Error::InvalidConfig { .. })));
        o.huge_size = Some(1 << 40);
        assert!(matches!(
            plan(&o, "x"),
            Err(Error::HugePagesUnavailable { .. })
        ));
        o.huge = HugePages::Prefer;
        let (p, why) = plan(&o, "x").unwrap();
        assert_eq!(p, Pages::Base);
        assert!(why.unwrap().contains("no huge pages of"));
    }
}
