//! Dates as settings and command-line arguments write them: RFC 3339 times or `YYYY-MM-DD` days
//! (the domain's [`swath_domain::dates`], which job type settings read too).

pub use swath_domain::dates::parse_date;
