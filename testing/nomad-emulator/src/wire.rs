//! Go's wire formats as Nomad prints and parses them: standard base64, `time.Duration` text,
//! RFC3339Nano timestamps, `%v` string lists, multierror text, `strconv` booleans and integers.

use std::time::Duration;

use chrono::{DateTime, Utc};

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The zero `time.Time` as Go prints it.
pub(crate) const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Standard base64 with padding.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard padded base64 as Go's `base64.StdEncoding` does (`\r` and `\n` are skipped); the
/// error is Go's `illegal base64 data at input byte <n>`.
pub(crate) fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let corrupt = |at: usize| format!("illegal base64 data at input byte {at}");
    let input: Vec<(usize, u8)> = text
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b != b'\r' && *b != b'\n')
        .collect();
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    for quantum in input.chunks(4) {
        let start = quantum[0].0;
        if quantum.len() < 4 {
            return Err(corrupt(start));
        }
        let mut values = [0u32; 4];
        let mut padding = 0;
        for (j, &(at, byte)) in quantum.iter().enumerate() {
            if byte == b'=' {
                if j < 2 || (j == 2 && quantum[3].1 != b'=') {
                    return Err(corrupt(at));
                }
                padding += 1;
                continue;
            }
            if padding > 0 {
                return Err(corrupt(at));
            }
            match BASE64.iter().position(|&c| c == byte) {
                Some(v) => values[j] = v as u32,
                None => return Err(corrupt(at)),
            }
        }
        if padding > 0 && quantum[3].0 != input.last().map_or(0, |l| l.0) {
            return Err(corrupt(quantum[3].0 + 1));
        }
        let n = (values[0] << 18) | (values[1] << 12) | (values[2] << 6) | values[3];
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - padding]);
    }
    Ok(out)
}

/// Parses a Go `time.ParseDuration` string (`"50ms"`, `"1m30s"`, `"0"`); a bare non-zero number is
/// an error, as in Go. Negative durations come back as zero.
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * nanos_per_unit;
    }
    if negative {
        return Some(Duration::ZERO);
    }
    Some(Duration::from_nanos(total as u64))
}

/// Formats nanoseconds as Go's `time.Duration.String()` (`"5s"`, `"1m30s"`, `"24h0m0s"`, `"250ms"`).
pub(crate) fn format_go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, scale) = match n {
            0..=999 => ("ns", 1),
            1_000..=999_999 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", trim_fraction(n, scale));
    }
    let hours = n / 3_600_000_000_000;
    let minutes = (n / 60_000_000_000) % 60;
    let seconds = trim_fraction(n % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

fn trim_fraction(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let text = format!("{fraction:0digits$}");
    format!("{whole}.{}", text.trim_end_matches('0'))
}

/// The current time in Unix nanoseconds.
pub(crate) fn now_nanos() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

/// Unix nanoseconds as Go's RFC3339Nano (trailing zeros of the fraction dropped).
pub(crate) fn rfc3339_nano(nanos: i64) -> String {
    let time = DateTime::<Utc>::from_timestamp_nanos(nanos);
    let base = time.format("%Y-%m-%dT%H:%M:%S").to_string();
    let fraction = time.timestamp_subsec_nanos();
    if fraction == 0 {
        return format!("{base}Z");
    }
    let digits = format!("{fraction:09}");
    format!("{base}.{}Z", digits.trim_end_matches('0'))
}

/// A string list as Go's `%v` prints it: `[a b]`.
pub(crate) fn go_list<S: AsRef<str>>(items: &[S]) -> String {
    let joined: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", joined.join(" "))
}

/// Error texts as hashicorp/go-multierror prints them.
pub(crate) fn multierror(errors: &[String]) -> String {
    let points: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
    if errors.len() == 1 {
        return format!("1 error occurred:\n\t{}\n\n", points[0]);
    }
    format!(
        "{} errors occurred:\n\t{}\n\n",
        errors.len(),
        points.join("\n\t")
    )
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(text, 10, 64)`: decimal digits only, no sign.
pub(crate) fn parse_go_uint(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Go's `strconv.Atoi`: an optional sign, then decimal digits.
pub(crate) fn parse_go_int(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
