//! How sizes and lists of names read in messages.

/// The first `max` names as `a, b, c, … (N more)` (`none` for no names): what a message shows
/// of a long listing.
pub fn preview(names: &[&str], max: usize) -> String {
    let mut s = names
        .iter()
        .take(max)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > max {
        s.push_str(&format!(", … ({} more)", names.len() - max));
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

/// `1.2 GB`, decimal units as the Hub shows them.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_the_hub() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_000), "1.0 kB");
        assert_eq!(human_bytes(231_508), "231.5 kB");
        assert_eq!(human_bytes(440_473_133), "440.5 MB");
        assert_eq!(human_bytes(11_100_000_000), "11.1 GB");
        assert_eq!(preview(&[], 3), "none");
        assert_eq!(preview(&["a", "b", "c", "d"], 2), "a, b, … (2 more)");
    }
}
