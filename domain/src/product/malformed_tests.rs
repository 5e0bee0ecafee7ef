//! Tests of the product-name parser on malformed names: each error names the wrong part.

use super::*;

/// Parses `name`, expects an error about `part` whose reason is `reason`, and checks the message.
#[track_caller]
fn assert_error(name: &str, part: NamePart, value: &str, reason: &str) {
    let err = ProductName::parse(name).expect_err(name);
    assert_eq!(
        (err.part, err.value.as_str(), err.reason.as_str()),
        (part, value, reason),
        "{name}"
    );
    assert_eq!(err.name, name);
    assert!(err
        .to_string()
        .starts_with(&format!("invalid product name \"{name}\": ")));
}

const S2_OK: &str = "S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505";
const S1_OK: &str = "S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_218A";

/// `S2_OK` with field `index` replaced.
fn s2_with(index: usize, value: &str) -> String {
    let mut fields: Vec<&str> = S2_OK.split('_').collect();
    fields[index] = value;
    fields.join("_")
}

/// `S1_OK` with field `index` replaced.
fn s1_with(index: usize, value: &str) -> String {
    let mut fields: Vec<&str> = S1_OK.split('_').collect();
    fields[index] = value;
    fields.join("_")
}

#[test]
fn error_messages_read_well() {
    let err = ProductName::parse(&s2_with(5, "T54IXA")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid product name \"S2A_MSIL1C_20200808T010311_N0500_R045_T54IXA_20230413T212505\": tile \"54IXA\": \
         latitude band 'I' is not a valid MGRS band (C-X without I and O)"
    );
    let err = ProductName::parse(&s2_with(2, "20201308T010311")).unwrap_err();
    assert!(err
        .to_string()
        .ends_with(": sensing start \"20201308T010311\": month 13 is out of range (01-12)"));
    let err = ProductName::parse(&s2_with(0, "S3A")).unwrap_err();
    assert!(err
        .to_string()
        .ends_with(": mission \"S3A\": expected S1A-S1D or S2A-S2D"));
    let err = ProductName::parse("S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA").unwrap_err();
    assert!(err
        .to_string()
        .ends_with("T54PXA\": expected 7 fields separated by '_' for a Sentinel-2 name, found 6"));
    assert_eq!(
        ProductName::parse("").unwrap_err().to_string(),
        "invalid product name \"\": the name is empty"
    );
    assert_eq!(NamePart::SensingStart.to_string(), "sensing start");
}

#[test]
fn malformed_missions_and_structure() {
    assert_error("", NamePart::Structure, "", "the name is empty");
    assert_error("///", NamePart::Structure, "", "the path has no file name");
    assert_error(
        &s2_with(0, "S3A"),
        NamePart::Mission,
        "S3A",
        "expected S1A-S1D or S2A-S2D",
    );
    assert_error(
        &s2_with(0, "S2E"),
        NamePart::Mission,
        "S2E",
        "expected S1A-S1D or S2A-S2D",
    );
    assert_error(
        &s2_with(0, "S2"),
        NamePart::Mission,
        "S2",
        "expected S1A-S1D or S2A-S2D",
    );
    assert_error(
        &S2_OK.replace('_', "-"),
        NamePart::Structure,
        &S2_OK.replace('_', "-"),
        "expected '_' after the mission \"S2A\", found '-' (fields are separated by '_')",
    );
    assert_error(
        &S2_OK.replacen("_N0500", "-N0500", 1),
        NamePart::Structure,
        "",
        "expected 7 fields separated by '_' for a Sentinel-2 name, found 6 ('-' is not a field separator)",
    );
    assert_error(
        "S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA",
        NamePart::Structure,
        "",
        "expected 7 fields separated by '_' for a Sentinel-2 name, found 6",
    );
    assert_error(
        &format!("{S2_OK}_20230413T212505"),
        NamePart::Structure,
        "",
        "expected 7 fields separated by '_' for a Sentinel-2 name, found 8",
    );
    assert_error(
        &S2_OK.replacen("_N0500", "__N0500", 1),
        NamePart::Structure,
        "",
        "expected 7 fields separated by '_' for a Sentinel-2 name, found 8 (field 4 is empty: doubled or trailing '_'?)",
    );
    assert_error(
        &S1_OK[..S1_OK.len() - 5],
        NamePart::Structure,
        "",
        "expected 9 fields separated by '_' for a Sentinel-1 name, found 8",
    );
    assert_error(
        &format!("{S1_OK}_218A"),
        NamePart::Structure,
        "",
        "expected 9 fields separated by '_' for a Sentinel-1 name, found 10",
    );
    assert_error(
        &s2_with(0, "S1A"),
        NamePart::Mission,
        "S1A",
        "the rest of the name is a Sentinel-2 name, which does not match this mission",
    );
    assert_error(
        &s1_with(0, "S2B"),
        NamePart::Mission,
        "S2B",
        "the rest of the name is a Sentinel-1 name, which does not match this mission",
    );
}

#[test]
fn malformed_characters_and_suffixes() {
    assert_error(
        &s2_with(5, "T54PXÄ"),
        NamePart::Structure,
        "",
        "unexpected non-ASCII character 'Ä' at byte 43 (Sentinel names are printable ASCII)",
    );
    assert_error(
        "S2A_MSIL1C_２０２００８０８T010311",
        NamePart::Structure,
        "",
        "unexpected non-ASCII character '２' at byte 11 (Sentinel names are printable ASCII)",
    );
    assert_error(
        &format!("{S2_OK} "),
        NamePart::Structure,
        "",
        "unexpected whitespace or control character ' ' at byte 60 (Sentinel names are printable ASCII)",
    );
    assert_error(
        &format!("{S2_OK}.SAFE.zip"),
        NamePart::Suffix,
        ".SAFE.ZIP",
        "unexpected extension: only \".SAFE\" is accepted",
    );
    assert_error(
        &format!("{S2_OK}.zip"),
        NamePart::Suffix,
        ".ZIP",
        "unexpected extension: only \".SAFE\" is accepted",
    );
}

#[test]
fn malformed_s2_fields() {
    assert_error(
        &s2_with(1, "MSIL1B"),
        NamePart::Level,
        "MSIL1B",
        "level \"L1B\" is not supported: expected MSIL1C or MSIL2A",
    );
    assert_error(
        &s2_with(1, "OLCI1C"),
        NamePart::Level,
        "OLCI1C",
        "expected MSIL1C or MSIL2A (instrument MSI followed by the level)",
    );
    let date = |value: &str, reason: &str| {
        assert_error(&s2_with(2, value), NamePart::SensingStart, value, reason)
    };
    date("20201308T010311", "month 13 is out of range (01-12)");
    date("20200008T010311", "month 00 is out of range (01-12)");
    date(
        "20210230T010311",
        "day 30 does not exist in February 2021 (28 days)",
    );
    date(
        "20200230T010311",
        "day 30 does not exist in February 2020 (29 days)",
    );
    date(
        "20210229T010311",
        "day 29 does not exist in February 2021 (28 days)",
    );
    date(
        "20200431T010311",
        "day 31 does not exist in April 2020 (30 days)",
    );
    date("20200800T010311", "day 00 is out of range (01-31)");
    date("20200808T240311", "hour 24 is out of range (00-23)");
    date("20200808T016011", "minute 60 is out of range (00-59)");
    date("20200808T010360", "second 60 is out of range (00-59)");
    date(
        "2020AUG8T010311",
        "'A' at position 5 is not a digit (expected YYYYMMDDTHHMMSS)",
    );
    date(
        "20200808X010311",
        "expected 'T' between the date and the time (YYYYMMDDTHHMMSS), found 'X'",
    );
    date(
        "20200808T0103",
        "expected a UTC timestamp YYYYMMDDTHHMMSS (15 characters), found 13 characters",
    );
    assert!(ProductName::parse(&s2_with(2, "20000229T000000")).is_ok());
    assert_error(
        &s2_with(6, "20231313T212505"),
        NamePart::Discriminator,
        "20231313T212505",
        "month 13 is out of range (01-12)",
    );
    assert_error(
        &s2_with(3, "0500"),
        NamePart::Baseline,
        "0500",
        "expected 'N' followed by 4 digits (e.g. N0500)",
    );
    assert_error(
        &s2_with(3, "N050"),
        NamePart::Baseline,
        "N050",
        "expected 4 digits, found 3 characters",
    );
    assert_error(
        &s2_with(3, "N05A0"),
        NamePart::Baseline,
        "N05A0",
        "'A' is not a digit",
    );
    assert_error(
        &s2_with(3, "N+500"),
        NamePart::Baseline,
        "N+500",
        "'+' is not a digit",
    );
    assert_error(
        &s2_with(4, "R000"),
        NamePart::RelativeOrbit,
        "R000",
        "relative orbit 0 is out of range (001-143)",
    );
    assert_error(
        &s2_with(4, "R144"),
        NamePart::RelativeOrbit,
        "R144",
        "relative orbit 144 is out of range (001-143)",
    );
    assert_error(
        &s2_with(4, "R45"),
        NamePart::RelativeOrbit,
        "R45",
        "expected 3 digits, found 2 characters",
    );
    assert_error(
        &s2_with(4, "045"),
        NamePart::RelativeOrbit,
        "045",
        "expected 'R' followed by 3 digits (001-143)",
    );
    assert!(ProductName::parse(&s2_with(4, "R143")).is_ok());
    assert!(ProductName::parse(&s2_with(4, "R001")).is_ok());
    let tile = |value: &str, shown: &str, reason: &str| {
        assert_error(&s2_with(5, value), NamePart::Tile, shown, reason)
    };
    tile(
        "T54IXA",
        "54IXA",
        "latitude band 'I' is not a valid MGRS band (C-X without I and O)",
    );
    tile(
        "T54AXA",
        "54AXA",
        "latitude band 'A' is not a valid MGRS band (C-X without I and O)",
    );
    tile(
        "T54POA",
        "54POA",
        "100 km square column 'O' is not valid (A-Z without I and O)",
    );
    tile(
        "T54PXW",
        "54PXW",
        "100 km square row 'W' is not valid (A-V without I and O)",
    );
    tile("T61PXA", "61PXA", "UTM zone 61 is out of range (01-60)");
    tile("T00PXA", "00PXA", "UTM zone 00 is out of range (01-60)");
    tile(
        "T54PX",
        "54PX",
        "expected 5 characters (2-digit UTM zone, latitude band, 2-letter 100 km square), found 4",
    );
    tile(
        "54PXAT",
        "54PXAT",
        "expected 'T' followed by a 5-character MGRS tile id (e.g. T54PXA)",
    );
}

#[test]
fn malformed_s1_fields() {
    assert_error(
        &s1_with(1, "XX"),
        NamePart::Mode,
        "XX",
        "expected IW, EW, WV or S1-S6",
    );
    assert_error(
        &s1_with(1, "S7"),
        NamePart::Mode,
        "S7",
        "expected IW, EW, WV or S1-S6",
    );
    assert_error(
        &s1_with(2, "GRDX"),
        NamePart::Resolution,
        "GRDX",
        "\"X\" is not a resolution class: expected F (full), H (high) or M (medium)",
    );
    assert_error(
        &s1_with(2, "GRD"),
        NamePart::Resolution,
        "GRD",
        "\"\" is not a resolution class: expected F (full), H (high) or M (medium)",
    );
    assert_error(
        &s1_with(2, "GRIH"),
        NamePart::ProductType,
        "GRIH",
        "expected GRD followed by the resolution class F, H or M (e.g. GRDH)",
    );
    assert_error(
        "S1A_IW_SLC__1SDV_20210412T151111_20210412T151136_037419_046917_218A",
        NamePart::ProductType,
        "SLC",
        "Sentinel-1 SLC products are not supported (only GRD)",
    );
    assert_error(
        "S1A_IW_OCN__2SDV_20210412T151111_20210412T151136_037419_046917_218A",
        NamePart::ProductType,
        "OCN",
        "Sentinel-1 OCN products are not supported (only GRD)",
    );
    assert_error(
        &s1_with(3, "2SDV"),
        NamePart::Level,
        "2SDV",
        "level \"2\" is not supported: GRD products are level 1",
    );
    assert_error(
        &s1_with(3, "1XDV"),
        NamePart::ProductClass,
        "1XDV",
        "\"X\" is not a product class: expected S (standard) or A (annotation)",
    );
    assert_error(
        &s1_with(3, "1SXY"),
        NamePart::Polarisation,
        "1SXY",
        "\"XY\" is not a polarisation: expected SH, SV, DH, DV, HH, HV, VV or VH",
    );
    assert_error(
        &s1_with(3, "1SD"),
        NamePart::Level,
        "1SD",
        "expected 4 characters: level, class and polarisation (e.g. 1SDV), found 3",
    );
    assert_error(
        &s1_with(4, "20210431T151111"),
        NamePart::SensingStart,
        "20210431T151111",
        "day 31 does not exist in April 2021 (30 days)",
    );
    assert_error(
        &s1_with(5, "2021041XT151136"),
        NamePart::SensingStop,
        "2021041XT151136",
        "'X' at position 8 is not a digit (expected YYYYMMDDTHHMMSS)",
    );
    assert_error(
        &s1_with(5, "20210412T151110"),
        NamePart::SensingStop,
        "20210412T151110",
        "the sensing stop is before the sensing start 20210412T151111",
    );
    assert!(ProductName::parse(&s1_with(5, "20210412T151111")).is_ok());
    assert_error(
        &s1_with(6, "37419"),
        NamePart::AbsoluteOrbit,
        "37419",
        "expected 6 digits, found 5 characters",
    );
    assert_error(
        &s1_with(6, "000000"),
        NamePart::AbsoluteOrbit,
        "000000",
        "absolute orbit 0 does not exist",
    );
    assert_error(
        &s1_with(6, "03741A"),
        NamePart::AbsoluteOrbit,
        "03741A",
        "'A' is not a digit",
    );
    assert_error(
        &s1_with(7, "04691G"),
        NamePart::Datatake,
        "04691G",
        "'G' is not a hexadecimal digit (0-9, A-F)",
    );
    assert_error(
        &s1_with(7, "+46917"),
        NamePart::Datatake,
        "+46917",
        "'+' is not a hexadecimal digit (0-9, A-F)",
    );
    assert_error(
        &s1_with(7, "46917"),
        NamePart::Datatake,
        "46917",
        "expected 6 hexadecimal digits, found 5 characters",
    );
    assert_error(
        &s1_with(8, "218Z"),
        NamePart::Crc,
        "218Z",
        "'Z' is not a hexadecimal digit (0-9, A-F)",
    );
    assert_error(
        &s1_with(8, "218AB"),
        NamePart::Crc,
        "218AB",
        "expected 4 hexadecimal digits, found 5 characters",
    );
}

#[test]
fn legacy_and_auxiliary_names_are_named_as_such() {
    assert_error(
        "S2A_OPER_PRD_MSIL1C_PDMC_20160905T104813_R002_V20160905T005712_20160905T010424.SAFE",
        NamePart::Structure,
        "",
        "this is a legacy long Sentinel-2 product name (S2A_OPER_PRD_..., used before December 2016), which is not \
         supported: catalogues list these products under compact names (S2A_MSIL1C_...)",
    );
    assert_error(
        "S1A_OPER_AUX_POEORB_OPOD_20210203T122423_V20210113T225942_20210115T005942.EOF",
        NamePart::ProductType,
        "AUX_POEORB",
        "this is a Sentinel-1 auxiliary data file (AUX_POEORB), not a product: auxiliary files must be filtered out \
         by product type",
    );
    assert_error(
        "S1A_OPER_AUX_POEORB_OPOD_20210203T122423_V20210113T225942_20210115T005942",
        NamePart::ProductType,
        "AUX_POEORB",
        "this is a Sentinel-1 auxiliary data file (AUX_POEORB), not a product: auxiliary files must be filtered out \
         by product type",
    );
    assert_error(
        "S1A_AUX_INS_V20190228T092500_G20190227T100643.SAFE",
        NamePart::ProductType,
        "AUX_INS",
        "this is a Sentinel-1 auxiliary data file (AUX_INS), not a product: auxiliary files must be filtered out by \
         product type",
    );
    assert_error(
        "S1__AUX_SCS_V20140406T133000_G20150928T162526.SAFE",
        NamePart::ProductType,
        "AUX_SCS",
        "this is a Sentinel-1 auxiliary data file (AUX_SCS), not a product: auxiliary files must be filtered out by \
         product type",
    );
    assert_error(
        "S2A_OPER_MSI_L1C_DS_S2RP_20230413T212505_S20200808T010314_N05.00",
        NamePart::ProductType,
        "OPER_MSI_L1C",
        "this is a Sentinel-2 ground-segment file (OPER_MSI_L1C_...), not a user product",
    );
    assert_error(
        "S2A_OPER_MSI_L1C_DS_S2RP_20230413T212505_S20200808T010314_N05",
        NamePart::ProductType,
        "OPER_MSI_L1C",
        "this is a Sentinel-2 ground-segment file (OPER_MSI_L1C_...), not a user product",
    );
}

#[test]
fn names_of_other_kinds_are_told_apart_from_malformed_ones() {
    for other in [
        "S1A_AUX_INS_V20190228T092500_G20210104T141310.SAFE",
        "S1A_OPER_AUX_POEORB_OPOD_20210401T121624_V20210311T225942_20210313T005942.EOF",
        "S1B_OPER_AUX_RESORB_OPOD_20210711T080000_V20210711T041000_20210711T072800.EOF",
        "S1__AUX_SCS_V20140406T133000_G20150928T162526.SAFE",
        "S2A_OPER_AUX_ECMWFD_ADG__20210101T000000_V20210101T000000_20210102T000000",
        "S2__OPER_AUX_UT1UTC_PDMC_20210101T000000_V20210101T000000_20220101T000000",
        "S2B_AUX_GIP_PROBAS_20210101T000000_V20210101T000000_21000101T000000.SAFE",
        "S2A_OPER_MSI_L1C_DS_S2RP_20230413T212505_S20200808T010314_N05.00",
        "S1A_IW_SLC__1SDV_20210412T151111_20210412T151136_037419_046917_1F2E.SAFE",
        "S1A_IW_OCN__2SDV_20210412T151111_20210412T151136_037419_046917_1F2E.SAFE",
        "S3A_SL_1_RBT____20200101T000000_20200101T000300_20200102T120000_0179_053_102_2160_LN2_O_NT_004.SEN3",
        "S3B_OL_1_EFR____20210101T100000_20210101T100300_20210102T120000_0179_047_122_2160_LN1_O_NT_002.SEN3",
        "S3__AX___CLM_AX_20000101T000000_20991231T235959_20151214T120000___________________MPC_O_AL_001.SEN3",
    ] {
        let err = ProductName::parse(other).expect_err(other);
        assert!(err.other_product, "{other}: {err}");
    }
    // A product of the other family, where one family is expected.
    let err = S1_OK.parse::<S2ProductName>().unwrap_err();
    assert!(err.other_product, "{err}");
    for malformed in [
        s2_with(2, "20201308T010311"),
        s2_with(0, "S3A"),
        s2_with(0, "S9A"),
        s1_with(2, "GRDX"),
        "S3A_XX_1_RBT____20200101T000000".to_string(),
        "S3Z_SL_1_RBT____20200101T000000".to_string(),
        "S2A_OPER_PRD_MSIL1C_PDMC_20160905T104813_R002_V20160905T005712_20160905T010424.SAFE"
            .to_string(),
        "S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505.ZIP".to_string(),
        "garbage".to_string(),
    ] {
        let err = ProductName::parse(&malformed).expect_err(&malformed);
        assert!(!err.other_product, "{malformed}: {err}");
    }
}
