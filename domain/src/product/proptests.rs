//! Property tests: names built from random valid components parse to exactly those components and
//! round-trip through `Display`; arbitrary strings and mutated names never panic.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use super::*;

const UNITS: [(char, MissionUnit); 4] = [
    ('A', MissionUnit::A),
    ('B', MissionUnit::B),
    ('C', MissionUnit::C),
    ('D', MissionUnit::D),
];
const BANDS: &str = "CDEFGHJKLMNPQRSTUVWX";
const COLUMNS: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ";
const ROWS: &str = "ABCDEFGHJKLMNPQRSTUV";
const PREFIXES: [&str; 3] = ["", "/eodata/Sentinel/2020/01/01/", "some/dir/"];

/// Any second from 1970 to 9999 (names have 4-digit years).
fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..=253_402_300_799).prop_map(|secs| Utc.timestamp_opt(secs, 0).single().unwrap())
}

fn name_time(time: &DateTime<Utc>) -> String {
    time.format("%Y%m%dT%H%M%S").to_string()
}

fn pick(chars: &str, index: usize) -> char {
    chars.as_bytes()[index % chars.len()] as char
}

/// Applies the decorations that parsing must see through: random case, a leading path, `.SAFE`
/// and a trailing `/`.
fn decorate(name: &str, lower: &[bool], prefix: usize, safe: bool, slash: bool) -> String {
    let cased: String = name
        .chars()
        .zip(lower.iter().cycle())
        .map(|(c, &low)| if low { c.to_ascii_lowercase() } else { c })
        .collect();
    let mut text = format!("{}{cased}", PREFIXES[prefix % PREFIXES.len()]);
    if safe {
        text.push_str(if lower.first() == Some(&true) {
            ".safe"
        } else {
            ".SAFE"
        });
    }
    if slash {
        text.push('/');
    }
    text
}

prop_compose! {
    /// A valid Sentinel-2 name (canonical text) and the value it must parse to.
    fn s2_name()(
        unit in 0usize..4,
        l2a in any::<bool>(),
        sensing_start in timestamp(),
        major in 0u8..100,
        minor in 0u8..100,
        relative_orbit in 1u16..=143,
        zone in 1u8..=60,
        (band, column, row) in (0usize..20, 0usize..24, 0usize..20),
        discriminator in timestamp(),
        cog in any::<bool>(),
    ) -> (String, S2ProductName) {
        let (unit_char, unit) = UNITS[unit];
        let tile = format!("{zone:02}{}{}{}", pick(BANDS, band), pick(COLUMNS, column), pick(ROWS, row));
        let text = format!(
            "S2{unit_char}_MSI{}_{}_N{major:02}{minor:02}_R{relative_orbit:03}_T{tile}_{}{}",
            if l2a { "L2A" } else { "L1C" },
            name_time(&sensing_start),
            name_time(&discriminator),
            if cog { "_COG" } else { "" },
        );
        let value = S2ProductName {
            mission: Mission { family: MissionFamily::S2, unit },
            level: if l2a { S2Level::L2A } else { S2Level::L1C },
            sensing_start,
            baseline: Baseline { major, minor },
            relative_orbit,
            tile: TileId::parse(&tile).unwrap(),
            discriminator,
            cog,
        };
        (text, value)
    }
}

prop_compose! {
    /// A valid Sentinel-1 GRD name (canonical text) and the value it must parse to.
    fn s1_name()(
        unit in 0usize..4,
        mode in 0usize..S1Mode::ALL.len(),
        resolution in 0usize..3,
        class in 0usize..2,
        polarisation in 0usize..8,
        sensing_start in timestamp(),
        duration in 0i64..100_000,
        absolute_orbit in 1u32..=999_999,
        datatake_id in 0u32..=0xFF_FFFF,
        crc in any::<u16>(),
        cog in any::<bool>(),
    ) -> (String, S1ProductName) {
        let (unit_char, unit) = UNITS[unit];
        let mission = Mission { family: MissionFamily::S1, unit };
        let (mode, resolution) = (S1Mode::ALL[mode], Resolution::ALL[resolution]);
        let (product_class, polarisation) = (ProductClass::ALL[class], Polarisation::ALL[polarisation]);
        let sensing_stop = (sensing_start + chrono::Duration::seconds(duration)).min(
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).single().unwrap(),
        );
        let text = format!(
            "S1{unit_char}_{}_GRD{}_1{}{}_{}_{}_{absolute_orbit:06}_{datatake_id:06X}_{crc:04X}{}",
            mode.code(),
            resolution.code(),
            product_class.code(),
            polarisation.code(),
            name_time(&sensing_start),
            name_time(&sensing_stop),
            if cog { "_COG" } else { "" },
        );
        let offset = match unit {
            MissionUnit::A => Some(73),
            MissionUnit::B => Some(27),
            _ => None,
        };
        let value = S1ProductName {
            mission,
            mode,
            product_type: S1ProductType::Grd,
            resolution,
            level: 1,
            product_class,
            polarisation,
            sensing_start,
            sensing_stop,
            absolute_orbit,
            relative_orbit: offset.map(|o: i64| ((i64::from(absolute_orbit) - o).rem_euclid(175) + 1) as u16),
            datatake_id,
            crc,
            cog,
        };
        (text, value)
    }
}

/// A valid name of either family with its expected value.
fn any_name() -> impl Strategy<Value = (String, ProductName)> {
    prop_oneof![
        s2_name().prop_map(|(text, value)| (text, ProductName::S2(value))),
        s1_name().prop_map(|(text, value)| (text, ProductName::S1(value))),
    ]
}

/// The property every input must have: no panic, an error that quotes the input, and an accepted
/// name whose canonical form parses back to the same value.
fn check_total(input: &str) -> Result<(), TestCaseError> {
    match ProductName::parse(input) {
        Ok(parsed) => {
            let canonical = parsed.canonical();
            prop_assert!(canonical
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_lowercase()));
            prop_assert_eq!(ProductName::parse(&canonical), Ok(parsed));
        }
        Err(err) => {
            prop_assert_eq!(&err.name, input);
            prop_assert!(err.to_string().contains(input));
            prop_assert!(!err.reason.is_empty());
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn valid_s2_names_parse_to_their_components(
        (text, value) in s2_name(),
        lower in proptest::collection::vec(any::<bool>(), 1..80),
        (prefix, safe, slash) in (0usize..3, any::<bool>(), any::<bool>()),
    ) {
        let input = decorate(&text, &lower, prefix, safe, slash);
        let parsed = ProductName::parse(&input).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&parsed, &ProductName::S2(value));
        prop_assert_eq!(parsed.to_string(), text.clone());
        prop_assert_eq!(parsed.safe_name(), format!("{text}.SAFE"));
        prop_assert_eq!(ProductName::parse(&parsed.to_string()), Ok(parsed));
    }

    #[test]
    fn valid_s1_names_parse_to_their_components(
        (text, value) in s1_name(),
        lower in proptest::collection::vec(any::<bool>(), 1..80),
        (prefix, safe, slash) in (0usize..3, any::<bool>(), any::<bool>()),
    ) {
        let input = decorate(&text, &lower, prefix, safe, slash);
        let parsed = ProductName::parse(&input).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&parsed, &ProductName::S1(value));
        prop_assert_eq!(parsed.to_string(), text.clone());
        prop_assert_eq!(ProductName::parse(&parsed.to_string()), Ok(parsed));
    }

    #[test]
    fn arbitrary_strings_never_panic(input in any::<String>()) {
        check_total(&input)?;
    }

    #[test]
    fn name_like_strings_never_panic(input in "(S[12][A-E]_)?[A-Z0-9_./ ]{0,80}") {
        check_total(&input)?;
    }

    #[test]
    fn mutated_names_never_panic(
        (text, _) in any_name(),
        index in any::<prop::sample::Index>(),
        replacement in any::<char>(),
        operation in 0u8..4,
    ) {
        let mut chars: Vec<char> = text.chars().collect();
        let at = index.index(chars.len());
        match operation {
            0 => chars[at] = replacement,
            1 => { chars.remove(at); }
            2 => chars.insert(at, replacement),
            _ => chars.truncate(at),
        }
        let mutated: String = chars.into_iter().collect();
        check_total(&mutated)?;
    }
}
