//! Example-based tests on real product names from the samples and catalogues.md §2: every field,
//! round trips, dedup keys and the JSON form.

use chrono::{TimeZone, Utc};

use super::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().unwrap()
}

fn s2(name: &str) -> S2ProductName {
    match ProductName::parse(name) {
        Ok(ProductName::S2(parsed)) => parsed,
        other => panic!("{name}: {other:?}"),
    }
}

fn s1(name: &str) -> S1ProductName {
    match ProductName::parse(name) {
        Ok(ProductName::S1(parsed)) => parsed,
        other => panic!("{name}: {other:?}"),
    }
}

fn mission(family: MissionFamily, unit: MissionUnit) -> Mission {
    Mission { family, unit }
}

/// Every real name quoted in the samples and in catalogues.md §2.
const REAL_NAMES: &[&str] = &[
    // odata_s2_l1c_page.json (both products) and stac_item_s2_l1c.json.
    "S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505.SAFE",
    "S2A_MSIL1C_20200808T010311_N0500_R045_T55PBR_20230413T212505.SAFE",
    "S2A_MSIL1C_20240116T000741_N0510_R130_T51CVP_20240116T010505",
    // catalogues.md §1-§2.
    "S2C_MSIL1C_20260101T000441_N0511_R073_T57NUF_20260101T013646",
    "/eodata/Sentinel-2/MSI/L2A_N0500/2023/03/01/S2B_MSIL2A_20230301T104859_N0510_R051_T31UDT_20240824T133550.SAFE",
    "S2A_MSIL1C_20151223T105452_N0201_R051_T31UFS_20151223T105449",
    "S2B_MSIL1C_20200205T105129_N0209_R051_T31UFS_20200207T121337",
    "S2A_MSIL1C_20210404T112111_N0500_R037_T31VEG_20230209T101305.SAFE",
    "S2A_MSIL2A_20150715T094306_N0204_R036_T33SXA_20150715T094315.SAFE",
    "S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_218A.SAFE",
    "S1C_IW_GRDH_1SDV_20250327T154419_20250327T154453_001628_002981_53D2_COG",
    // EW / 1SDH names from public repositories (found with a code search).
    "S1A_EW_GRDM_1SDH_20240917T191651_20240917T191725_055709_06CDC8_7EF4.SAFE",
    "S1B_EW_GRDM_1SDH_20191130T165626_20191130T165726_019159_0242A2_2F58",
];

#[test]
fn every_real_name_parses_and_round_trips() {
    for &name in REAL_NAMES {
        let parsed = ProductName::parse(name).unwrap_or_else(|e| panic!("{e}"));
        let canonical = parsed.canonical();
        let base = name.rsplit('/').next().unwrap();
        assert_eq!(canonical, base.strip_suffix(".SAFE").unwrap_or(base));
        assert_eq!(ProductName::parse(&canonical).unwrap(), parsed);
        assert_eq!(ProductName::parse(&parsed.safe_name()).unwrap(), parsed);
        assert_eq!(ProductName::parse(&name.to_lowercase()).unwrap(), parsed);
        assert_eq!(name.parse::<ProductName>().unwrap(), parsed);
    }
}

#[test]
fn odata_sample_s2_l1c_every_field() {
    let name = s2("S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505.SAFE");
    assert_eq!(
        name,
        S2ProductName {
            mission: mission(MissionFamily::S2, MissionUnit::A),
            level: S2Level::L1C,
            sensing_start: utc(2020, 8, 8, 1, 3, 11),
            baseline: Baseline { major: 5, minor: 0 },
            relative_orbit: 45,
            tile: TileId::parse("54PXA").unwrap(),
            discriminator: utc(2023, 4, 13, 21, 25, 5),
            cog: false,
        }
    );
    assert_eq!(name.baseline.as_str(), "N0500");
    assert_eq!(name.baseline.processor_version(), "05.00");
    assert_eq!(name.mission.to_string(), "S2A");
    assert_eq!(name.tile.to_string(), "54PXA");
}

#[test]
fn stac_sample_and_s2c_and_l2a_fields() {
    let stac = s2("S2A_MSIL1C_20240116T000741_N0510_R130_T51CVP_20240116T010505");
    assert_eq!(
        stac.baseline,
        Baseline {
            major: 5,
            minor: 10
        }
    );
    assert_eq!(
        (stac.relative_orbit, stac.tile.to_string()),
        (130, "51CVP".to_owned())
    );
    assert_eq!(stac.sensing_start, utc(2024, 1, 16, 0, 7, 41));

    let s2c = s2("S2C_MSIL1C_20260101T000441_N0511_R073_T57NUF_20260101T013646");
    assert_eq!(s2c.mission, mission(MissionFamily::S2, MissionUnit::C));
    assert_eq!(s2c.baseline.to_string(), "N0511");
    assert_eq!(s2c.relative_orbit, 73);

    let l2a = s2("/eodata/Sentinel-2/MSI/L2A_N0500/2023/03/01/S2B_MSIL2A_20230301T104859_N0510_R051_T31UDT_20240824T133550.SAFE/");
    assert_eq!(l2a.mission, mission(MissionFamily::S2, MissionUnit::B));
    assert_eq!(l2a.level, S2Level::L2A);
    assert_eq!(
        l2a.baseline,
        Baseline {
            major: 5,
            minor: 10
        }
    );
    assert_eq!(l2a.tile.to_string(), "31UDT");
    assert_eq!(l2a.discriminator, utc(2024, 8, 24, 13, 35, 50));
}

#[test]
fn discriminator_may_precede_sensing() {
    let name = s2("S2A_MSIL1C_20151223T105452_N0201_R051_T31UFS_20151223T105449");
    assert!(name.discriminator < name.sensing_start);
    assert_eq!(name.baseline, Baseline { major: 2, minor: 1 });
}

#[test]
fn s1_reference_name_every_field() {
    let name = s1("S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_218A.SAFE");
    assert_eq!(
        name,
        S1ProductName {
            mission: mission(MissionFamily::S1, MissionUnit::A),
            mode: S1Mode::IW,
            product_type: S1ProductType::Grd,
            resolution: Resolution::High,
            level: 1,
            product_class: ProductClass::Standard,
            polarisation: Polarisation::DV,
            sensing_start: utc(2021, 4, 12, 15, 11, 11),
            sensing_stop: utc(2021, 4, 12, 15, 11, 36),
            absolute_orbit: 37419,
            relative_orbit: Some(72),
            datatake_id: 0x046917,
            crc: 0x218A,
            cog: false,
        }
    );
    assert_eq!(name.datatake_id, 289_047);
    assert_eq!(
        (name.datatake_hex(), name.crc_hex()),
        ("046917".to_owned(), "218A".to_owned())
    );
}

#[test]
fn s1c_cog_and_ew_names() {
    let s1c = s1("S1C_IW_GRDH_1SDV_20250327T154419_20250327T154453_001628_002981_53D2_COG");
    assert_eq!(s1c.mission, mission(MissionFamily::S1, MissionUnit::C));
    assert!(s1c.cog);
    assert_eq!(s1c.relative_orbit, None);
    assert_eq!(
        (s1c.absolute_orbit, s1c.datatake_id, s1c.crc),
        (1628, 0x002981, 0x53D2)
    );
    assert_eq!(
        ProductName::S1(s1c.clone()).safe_name(),
        "S1C_IW_GRDH_1SDV_20250327T154419_20250327T154453_001628_002981_53D2_COG.SAFE"
    );

    let ew = s1("S1A_EW_GRDM_1SDH_20240917T191651_20240917T191725_055709_06CDC8_7EF4.SAFE");
    assert_eq!(
        (ew.mode, ew.resolution, ew.polarisation),
        (S1Mode::EW, Resolution::Medium, Polarisation::DH)
    );
    assert_eq!(ew.relative_orbit, Some(((55709 - 73) % 175 + 1) as u16));

    let s1b = s1("S1B_EW_GRDM_1SDH_20191130T165626_20191130T165726_019159_0242A2_2F58");
    assert_eq!(s1b.relative_orbit, Some(58));
    assert_eq!(s1b.datatake_id, 0x0242A2);
}

#[test]
fn relative_orbit_formula() {
    let s1a = mission(MissionFamily::S1, MissionUnit::A);
    let s1b = mission(MissionFamily::S1, MissionUnit::B);
    assert_eq!(relative_orbit(s1a, 73), Some(1));
    assert_eq!(relative_orbit(s1a, 72), Some(175));
    assert_eq!(relative_orbit(s1a, 1), Some(104));
    assert_eq!(relative_orbit(s1b, 27), Some(1));
    assert_eq!(relative_orbit(s1b, 202), Some(1));
    assert_eq!(
        relative_orbit(mission(MissionFamily::S1, MissionUnit::D), 1000),
        None
    );
}

/// The NRT-3h / Fast-24h pair of catalogues.md §2.4. The document elides the start of the names;
/// `S1B_IW_GRDH_1SDV` is a reconstruction (absolute orbit 21909 in June 2020 is S1B, and the
/// sample's stored product type is IW_GRDH_1S).
#[test]
fn nrt_and_fast24h_slices_have_different_keys_but_one_datatake() {
    let nrt = s1("S1B_IW_GRDH_1SDV_20200606T060612_20200606T060637_021909_029944_0FCC");
    let fast = s1("S1B_IW_GRDH_1SDV_20200606T060615_20200606T060640_021909_029944_4C69");
    assert_ne!(nrt.acquisition_key(), fast.acquisition_key());
    assert_eq!(
        (nrt.datatake_id, nrt.absolute_orbit),
        (fast.datatake_id, fast.absolute_orbit)
    );
}

#[test]
fn regenerated_duplicates_and_cog_twins_share_the_acquisition_key() {
    let a =
        ProductName::parse("S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_218A")
            .unwrap();
    let b =
        ProductName::parse("S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_6184")
            .unwrap();
    let cog = ProductName::parse(
        "S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_EBF8_COG",
    )
    .unwrap();
    assert_ne!(a, b);
    assert_eq!(a.acquisition_key(), b.acquisition_key());
    assert_eq!(a.acquisition_key(), cog.acquisition_key());
    assert_eq!(a.version_key(), None);
}

#[test]
fn s2_keys_follow_the_baseline_then_the_discriminator() {
    let old = s2("S2B_MSIL2A_20211002T114349_N0301_R123_T29UNV_20211002T141024");
    let new = s2("S2B_MSIL2A_20211002T114349_N0500_R123_T29UNV_20230102T203816");
    let later_old = s2("S2B_MSIL2A_20211002T114349_N0301_R123_T29UNV_20211002T160521");
    assert_eq!(old.acquisition_key(), new.acquisition_key());
    assert!(new.version_key() > old.version_key());
    assert!(later_old.version_key() > old.version_key());
    assert!(new.version_key() > later_old.version_key());
    assert!(Baseline { major: 5, minor: 0 } > Baseline { major: 3, minor: 1 });
    assert!(
        Baseline {
            major: 5,
            minor: 10
        } > Baseline { major: 5, minor: 9 }
    );
    let other_tile = s2("S2B_MSIL2A_20211002T114349_N0301_R123_T29UPV_20211002T141024");
    assert_ne!(old.acquisition_key(), other_tile.acquisition_key());
}

#[test]
fn accepted_spellings() {
    let canonical = "S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505";
    for spelling in [
        "s2a_msil1c_20200808t010311_n0500_r045_t54pxa_20230413t212505.safe",
        "S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505.SAFE/",
        "/eodata/Sentinel-2/MSI/L1C_N0500/2020/08/08/S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505.SAFE",
        "relative/dir/S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505//",
        "/données/S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505",
    ] {
        assert_eq!(ProductName::parse(spelling).unwrap().canonical(), canonical, "{spelling}");
    }
    let cog =
        ProductName::parse("S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505_cog.SAFE")
            .unwrap();
    assert!(cog.is_cog());
    assert_eq!(cog.canonical(), format!("{canonical}_COG"));
    assert_eq!(cog.safe_name(), format!("{canonical}_COG.SAFE"));
}

#[test]
fn helpers_and_typed_parsers() {
    let name =
        ProductName::parse("S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_218A")
            .unwrap();
    assert_eq!(name.mission().to_string(), "S1A");
    assert_eq!(name.family(), MissionFamily::S1);
    assert_eq!(name.sensing_start(), utc(2021, 4, 12, 15, 11, 11));
    assert!(!name.is_cog());
    let s1_err = "S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505"
        .parse::<S1ProductName>()
        .unwrap_err();
    assert_eq!(
        (s1_err.part, s1_err.reason.as_str()),
        (NamePart::Mission, "expected a Sentinel-1 product")
    );
    assert!(
        "S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505"
            .parse::<S2ProductName>()
            .is_ok()
    );
}

#[test]
fn json_is_flat_and_stable() {
    let s2 =
        ProductName::parse("S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505.SAFE")
            .unwrap();
    assert_eq!(
        serde_json::to_string(&s2).unwrap(),
        concat!(
            r#"{"family":"S2","name":"S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505","#,
            r#""mission":"S2A","level":"L1C","sensing_start":"2020-08-08T01:03:11Z","baseline":"N0500","#,
            r#""relative_orbit":45,"tile":"54PXA","discriminator":"2023-04-13T21:25:05Z","cog":false}"#
        )
    );
    let s1 = ProductName::parse(
        "S1C_IW_GRDH_1SDV_20250327T154419_20250327T154453_001628_002981_53D2_COG",
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&s1).unwrap(),
        concat!(
            r#"{"family":"S1","name":"S1C_IW_GRDH_1SDV_20250327T154419_20250327T154453_001628_002981_53D2_COG","#,
            r#""mission":"S1C","mode":"IW","product_type":"GRD","resolution":"H","level":1,"product_class":"S","#,
            r#""polarisation":"DV","sensing_start":"2025-03-27T15:44:19Z","sensing_stop":"2025-03-27T15:44:53Z","#,
            r#""absolute_orbit":1628,"relative_orbit":null,"datatake":"002981","datatake_id":10625,"crc":"53D2","#,
            r#""cog":true}"#
        )
    );
}

#[test]
fn datatake_hex_matches_the_catalogue_decimal() {
    // catalogues.md §1.4: missionTakeId 206656 = 0x032740.
    let name = s1("S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_032740_218A");
    assert_eq!(name.datatake_id, 206_656);
}
