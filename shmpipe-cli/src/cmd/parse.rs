//! Value parsers for the command line: each returns a one-line message
//! that says what is wrong.

use std::time::Duration;

/// A ring address, checked by the library's parser.
pub fn address(s: &str) -> Result<shmpipe::Address, String> {
    shmpipe::Address::parse(s).map_err(|e| match path_hint(s) {
        Some(hint) => format!("{e}; did you mean `{hint}`?"),
        None => e.to_string(),
    })
}

/// The address a path was probably meant as: `/dev/shm/NAME` (as `inspect`
/// shows it) is `shm:NAME`, another path `file:PATH`.
fn path_hint(s: &str) -> Option<String> {
    if let Some(name) = s.strip_prefix("/dev/shm/") {
        if !name.is_empty() && !name.contains('/') {
            return Some(format!("shm:{name}"));
        }
    }
    if s.contains('/') && !s.contains(':') {
        return Some(format!("file:{s}"));
    }
    None
}

/// A byte count with an optional binary suffix: `4096`, `64K`, `2M`, `1G`
/// (also `KiB`, `MiB`, `GiB`, `k`, `m`, `g`).
pub fn size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!("`{s}` is not a size (examples: 4096, 64K, 2M, 1G)"));
    }
    let n: u64 = digits.parse().map_err(|_| format!("`{s}` is too large"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{s}` (use K, M or G)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// A count (decimal, or `0x` hex).
pub fn count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let r = match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| format!("`{s}` is not a number"))
}

/// Permission bits in octal: `600`, `0600`, `0o640`.
pub fn mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    let m = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("`{s}` is not an octal mode (examples: 600, 0640)"))?;
    if m > 0o777 {
        return Err(format!(
            "`{s}` is not a permission mode: only the bits 0777 are allowed"
        ));
    }
    Ok(m)
}

/// A duration: `500ms`, `2s`, `1m30s`, or a plain number of seconds.
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if (0.0..1e12).contains(&secs) {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("`{s}` is not a duration"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("`{s}` is not a duration ({e}; examples: 500ms, 2s, 1m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_get_a_hint() {
        let e = address("/dev/shm/orders").unwrap_err();
        assert!(e.ends_with("did you mean `shm:orders`?"), "{e}");
        let e = address("./rings/x").unwrap_err();
        assert!(e.ends_with("did you mean `file:./rings/x`?"), "{e}");
        assert!(!address("shm:a/b").unwrap_err().contains("did you mean"));
    }

    #[test]
    fn sizes() {
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("64K"), Ok(65536));
        assert_eq!(size("2MiB"), Ok(2 << 20));
        assert_eq!(size("1g"), Ok(1 << 30));
        assert!(size("").is_err());
        assert!(size("K").is_err());
        assert!(size("12Q").is_err());
        assert!(size("99999999999999999999").is_err());
        assert!(size("99999999999999G").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(mode("600"), Ok(0o600));
        assert_eq!(mode("0640"), Ok(0o640));
        assert_eq!(mode("0o777"), Ok(0o777));
        assert!(mode("800").is_err());
        assert!(mode("1777").is_err());
        assert!(mode("rw").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration("-1").is_err());
        assert!(duration("soon").is_err());
    }
}
