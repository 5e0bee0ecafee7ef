//! Output product identity: which products are the same product.
//!
//! HR-S&I products are named `<TYPE>_<sensing>_<mission>_T<tile>_V<baseline>_<flag>`, e.g.
//! `FSC_20211002T113319_S2B_T29UNV_V100_1`. The `V…` field is the processing baseline of the
//! software that made the product; the last digit is a quality flag (`0` degraded, `1` nominal),
//! not a version counter. A product's identity is its name without the flag:
//! `FSC_20211002T113319_S2B_T29UNV_V100`. So
//!
//! - a product made again by the same software (a missing partial input arrived, a manual retry)
//!   has the same identity and replaces the earlier one, whatever its flag;
//! - a product made by a newer processor has a new baseline: a new identity, a new product beside
//!   the old one.
//!
//! Names that do not end in `_V<digits>_<digit>` are their own identity. The database holds at most
//! one live job per identity (`output_products`) and numbers its announcements (`publications`):
//! the SQL of migration `20261207000016` reads identities the same way (a test checks both agree).

/// The identity of the product named `name` (the last segment of its path): the name without its
/// quality flag when it has the HR-S&I form, else the name itself.
pub fn product_identity(name: &str) -> &str {
    match split_flag(name) {
        Some((identity, _)) => identity,
        None => name,
    }
}

/// The quality flag of an HR-S&I product name (`0` degraded, `1` nominal, or another digit), if the
/// name has that form.
pub fn quality_flag(name: &str) -> Option<u8> {
    split_flag(name).map(|(_, flag)| flag)
}

/// `name` split into its identity and its quality flag, if it ends in `_V<digits>_<digit>`.
fn split_flag(name: &str) -> Option<(&str, u8)> {
    let (identity, flag) = name.rsplit_once('_')?;
    let [digit] = flag.as_bytes() else {
        return None;
    };
    if !digit.is_ascii_digit() {
        return None;
    }
    let (_, baseline) = identity.rsplit_once('_')?;
    let version = baseline.strip_prefix('V')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((identity, digit - b'0'))
}

/// The identity of the product at `path` (a product's path in its store: the product is its last
/// segment).
pub fn identity_of_path(path: &str) -> &str {
    product_identity(
        path.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default(),
    )
}

/// The message id under which revision `revision` (from 1) of the product `identity` is announced:
/// `<identity>#<revision>`. Every announcement has its own id (consumers drop a message whose id
/// they have seen), and the same announcement sent again keeps its id.
pub fn message_id(identity: &str, revision: i32) -> String {
    format!("{identity}#{revision}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quality_flag_is_not_part_of_the_identity() {
        for (name, identity, flag) in [
            (
                "FSC_20211002T113319_S2B_T29UNV_V100_1",
                "FSC_20211002T113319_S2B_T29UNV_V100",
                Some(1),
            ),
            (
                "FSC_20211002T113319_S2B_T29UNV_V100_0",
                "FSC_20211002T113319_S2B_T29UNV_V100",
                Some(0),
            ),
            (
                "RLIE_20211002T113319_S2B_T29UNV_V200_1",
                "RLIE_20211002T113319_S2B_T29UNV_V200",
                Some(1),
            ),
            // Not the HR-S&I form: the name is the identity.
            (
                "S2B_MSIL1C_20211002T113319_N0500_R080_T29UNV_20230102T203816",
                "S2B_MSIL1C_20211002T113319_N0500_R080_T29UNV_20230102T203816",
                None,
            ),
            (
                "FSC_20210413T101347_S2A_T34VEM_1",
                "FSC_20210413T101347_S2A_T34VEM_1",
                None,
            ),
            ("X_V_1", "X_V_1", None),
            ("X_V1_12", "X_V1_12", None),
            ("X_V1_a", "X_V1_a", None),
            ("V1_1", "V1_1", None),
            ("", "", None),
        ] {
            assert_eq!(product_identity(name), identity, "{name}");
            assert_eq!(quality_flag(name), flag, "{name}");
        }
        assert_eq!(
            identity_of_path("CLMS/Snow/FSC/2021/10/02/FSC_20211002T113319_S2B_T29UNV_V100_0/"),
            "FSC_20211002T113319_S2B_T29UNV_V100"
        );
        assert_eq!(
            message_id("FSC_20211002T113319_S2B_T29UNV_V100", 2),
            "FSC_20211002T113319_S2B_T29UNV_V100#2"
        );
    }
}
