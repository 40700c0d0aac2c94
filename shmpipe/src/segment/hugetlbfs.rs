//! Huge pages: the sizes the kernel offers, the reserved pool, hugetlbfs
//! mounts, and the page size a mapping really got.
//!
//! Facts this module relies on (measured, see `shared/tech-notes.md`):
//! with no pages reserved, mapping hugetlb memory fails with `ENOMEM`
//! (never later, and never `SIGBUS`, since we never pass `MAP_NORESERVE`);
//! a hugetlbfs file's size must be a whole number of huge pages; the
//! huge page size of a hugetlbfs mount is its `statfs` block size.
//!
//! # References
//!  - [hugetlbpage.rst](https://www.kernel.org/doc/html/latest/admin-guide/mm/hugetlbpage.html)

use std::path::{Path, PathBuf};

use super::HUGETLBFS_MAGIC;

/// Environment variable naming a hugetlbfs mount to use for `shm:` rings
/// with huge pages (otherwise the first suitable mount in `/proc/mounts`).
pub const HUGETLBFS_ENV: &str = "SHMPIPE_HUGETLBFS";

/// The huge page sizes this kernel offers, in bytes, ascending
/// (`/sys/kernel/mm/hugepages/hugepages-<N>kB`).
pub(crate) fn supported_sizes() -> Vec<u64> {
    let mut sizes: Vec<u64> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            kb.checked_mul(1024)
        })
        .collect();
    sizes.sort_unstable();
    sizes
}

/// The default huge page size (`Hugepagesize` in `/proc/meminfo`).
pub(crate) fn default_size() -> Option<u64> {
    meminfo("Hugepagesize").map(|kb| kb * 1024)
}

/// A field of `/proc/meminfo`, in the unit the file uses (kB or pages).
pub(crate) fn meminfo(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The pool of huge pages of one size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pool {
    /// Pages reserved by the administrator (`nr_hugepages`).
    pub(crate) total: u64,
    /// Pages not in use (`free_hugepages`).
    pub(crate) free: u64,
    /// Free pages already promised to mappings (`resv_hugepages`).
    pub(crate) reserved: u64,
}

impl Pool {
    /// Pages a new mapping can still get.
    pub(crate) fn available(&self) -> u64 {
        self.free.saturating_sub(self.reserved)
    }
}

/// The pool for huge pages of `size` bytes.
pub(crate) fn pool(size: u64) -> Pool {
    let dir = format!("/sys/kernel/mm/hugepages/hugepages-{}kB", size / 1024);
    let read = |f: &str| -> u64 {
        std::fs::read_to_string(format!("{dir}/{f}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    Pool {
        total: read("nr_hugepages"),
        free: read("free_hugepages"),
        reserved: read("resv_hugepages"),
    }
}

/// The huge page size of the hugetlbfs mount holding `path`, or `None` if
/// it is not on hugetlbfs.
pub(crate) fn page_size_at(path: &Path) -> Option<u64> {
    let st = rustix::fs::statfs(path).ok()?;
    #[allow(clippy::unnecessary_cast)]
    let (ftype, bsize) = (st.f_type as i64, st.f_bsize as u64);
    (ftype == HUGETLBFS_MAGIC && bsize.is_power_of_two()).then_some(bsize)
}

/// Every hugetlbfs mount, with its page size: `$SHMPIPE_HUGETLBFS` first,
/// then `/proc/mounts` in order.
pub(crate) fn mounts() -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    if let Some(dir) = std::env::var_os(HUGETLBFS_ENV) {
        let dir = PathBuf::from(dir);
        if let Some(size) = page_size_at(&dir) {
            found.push((dir, size));
        }
    }
    let text = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(_dev), Some(dir), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if fstype != "hugetlbfs" {
            continue;
        }
        let dir = PathBuf::from(unescape_mount_path(dir));
        if found.iter().any(|(d, _)| *d == dir) {
            continue;
        }
        if let Some(size) = page_size_at(&dir) {
            found.push((dir, size));
        }
    }
    found
}

/// `/proc/mounts` escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let octal = std::str::from_utf8(&b[i + 1..i + 4]).ok();
            if let Some(v) = octal.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The page size of the mapping containing `addr`, as the kernel reports it
/// (`KernelPageSize` in `/proc/self/smaps`).
pub(crate) fn mapping_page_size(addr: usize) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
                continue;
            }
        }
        if inside {
            if let Some(rest) = line.strip_prefix("KernelPageSize:") {
                let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
                return Some(kb * 1024);
            }
        }
    }
    None
}

/// Human form of a page size: `2 MiB`, `1 GiB`, `4 KiB`.
pub(crate) fn pretty(size: u64) -> String {
    if size >= 1 << 30 && size % (1 << 30) == 0 {
        format!("{} GiB", size >> 30)
    } else if size >= 1 << 20 && size % (1 << 20) == 0 {
        format!("{} MiB", size >> 20)
    } else {
        format!("{} KiB", size >> 10)
    }
}

/// Why a mapping of `pages` huge pages of `size` failed with `ENOMEM`, and
/// what to do.
pub(crate) fn pool_remedy(size: u64, pages: u64) -> String {
    let p = pool(size);
    let dir = format!(
        "/sys/kernel/mm/hugepages/hugepages-{}kB/nr_hugepages",
        size / 1024
    );
    let how = if Some(size) == default_size() {
        format!(
            "`echo {} > /proc/sys/vm/nr_hugepages` (or `sysctl vm.nr_hugepages={}`)",
            p.total + pages,
            p.total + pages
        )
    } else {
        format!("`echo {} > {dir}`", p.total + pages)
    };
    format!(
        "the ring needs {pages} huge page(s) of {}, but only {} of the {} reserved are available; \
         reserve more as root with {how}",
        pretty(size),
        p.available(),
        p.total
    )
}

/// What to do when no hugetlbfs mount for `size` exists.
pub(crate) fn mount_remedy(size: u64) -> String {
    let opt = if Some(size) == default_size() {
        String::new()
    } else {
        format!(
            " -o pagesize={}",
            pretty(size).replace(' ', "").replace("iB", "")
        )
    };
    format!(
        "no hugetlbfs mount for {} pages: mount one as root with \
         `mkdir -p /mnt/huge && mount -t hugetlbfs{opt} none /mnt/huge` \
         (or point {HUGETLBFS_ENV} at an existing mount)",
        pretty(size)
    )
}

/// What to do when System V refuses huge pages with `EPERM`.
pub(crate) fn sysv_perm_remedy() -> String {
    let group = std::fs::read_to_string("/proc/sys/vm/hugetlb_shm_group")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    format!(
        "System V huge pages need the CAP_IPC_LOCK capability or membership of the group \
         in /proc/sys/vm/hugetlb_shm_group (now {group}): run as root, grant the capability \
         (`setcap cap_ipc_lock+ep PROGRAM`), or as root `echo GID > \
         /proc/sys/vm/hugetlb_shm_group` with your group id"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_unescape() {
        assert_eq!(unescape_mount_path("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
        assert_eq!(unescape_mount_path("/x\\"), "/x\\");
    }

    #[test]
    fn pretty_sizes() {
        assert_eq!(pretty(2 << 20), "2 MiB");
        assert_eq!(pretty(1 << 30), "1 GiB");
        assert_eq!(pretty(4096), "4 KiB");
    }

    #[cfg(not(miri))]
    #[test]
    fn smaps_knows_the_stack() {
        let x = 5u64;
        assert_eq!(mapping_page_size(&x as *const u64 as usize), Some(4096));
        assert!(supported_sizes().iter().all(|s| s.is_power_of_two()));
    }
}
