//! Checks of the string formats the description and Nomad's wire conventions use.

/// Whether `text` is standard base64 with padding (`[]byte` fields such as `Payload`; nomad-api.md
/// §0 "Bytes").
pub(super) fn is_padded_base64(text: &str) -> bool {
    let data = text.trim_end_matches('=');
    let padding = text.len() - data.len();
    text.len().is_multiple_of(4)
        && padding <= 2
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Whether `text` is an RFC 3339 date-time as Go writes one, e.g. `2026-08-21T10:00:01.5Z` or
/// `0001-01-01T00:00:00Z` (nomad-api.md §0 "Timestamps").
pub(super) fn is_rfc3339(text: &str) -> bool {
    let field = |from: usize, to: usize, max: u32| {
        text.get(from..to)
            .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u32>().ok())
            .is_some_and(|n| n <= max)
    };
    let separator = |at: usize, c: u8| text.as_bytes().get(at) == Some(&c);
    let date_time = field(0, 4, 9999)
        && separator(4, b'-')
        && field(5, 7, 12)
        && separator(7, b'-')
        && field(8, 10, 31)
        && separator(10, b'T')
        && field(11, 13, 23)
        && separator(13, b':')
        && field(14, 16, 59)
        && separator(16, b':')
        && field(17, 19, 60);
    if !date_time || text[5..7] == *"00" || text[8..10] == *"00" {
        return false;
    }
    let mut zone = &text[19..];
    if let Some(fraction) = zone.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        zone = &fraction[digits..];
    }
    zone == "Z"
        || (zone.len() == 6
            && (zone.starts_with('+') || zone.starts_with('-'))
            && is_two_digits(&zone[1..3], 23)
            && zone.as_bytes()[3] == b':'
            && is_two_digits(&zone[4..6], 59))
}

fn is_two_digits(text: &str, max: u32) -> bool {
    text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u32>().is_ok_and(|n| n <= max)
}

/// Whether `text` parses with Go's `time.ParseDuration` (e.g. `60s`, `1m30s`, `1.5h`, `0`): the
/// syntax of the `wait` query parameter (nomad-api.md §4). A bare number other than `0` is not one.
pub(super) fn is_go_duration(text: &str) -> bool {
    const UNITS: &[&str] = &["ns", "us", "µs", "μs", "ms", "s", "m", "h"];
    let mut rest = text.strip_prefix(['+', '-']).unwrap_or(text);
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let whole = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut digits = whole;
        rest = &rest[whole..];
        if let Some(fraction) = rest.strip_prefix('.') {
            let fraction_digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            digits += fraction_digits;
            rest = &fraction[fraction_digits..];
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        if digits == 0 || !UNITS.contains(&&rest[..unit_len]) {
            return false;
        }
        rest = &rest[unit_len..];
    }
    true
}
