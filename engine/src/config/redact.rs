//! Credentials out of printed settings: user info and secret query parameters of URLs.
//!
//! [`redact_url`] hides what a URL may carry (`user:password@`, `?password=`, `?token=`...);
//! [`Settings`]'s `Debug` applies it to every text setting, and `Secret`s print as `***`.

use std::fmt;

pub use swath_domain::redact::redact_url;

use super::Settings;

/// Every text in `value` through [`redact_url`].
fn redact_value(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => *s = redact_url(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_value),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(redact_value),
        _ => {}
    }
}

impl Settings {
    /// These settings with every credential hidden (URL user info and secret query parameters,
    /// the database password), for showing them. Secrets (tokens, the broker URL) already
    /// serialize as `***`.
    pub fn redacted(&self) -> Settings {
        let mut shown = self.clone();
        shown.database_url = super::SecretUrl::new(self.database_url.redacted());
        for url in [
            &mut shown.catalogue,
            &mut shown.eodata_url,
            &mut shown.output_url,
            &mut shown.dump_url,
            &mut shown.nomad_addr,
            &mut shown.orchestrator_url,
            &mut shown.publication_target.host_base,
        ] {
            *url = redact_url(url);
        }
        for url in &mut shown.input_extra_roots {
            *url = redact_url(url);
        }
        shown
    }
}

/// The settings as JSON, every text redacted (any URL in any setting, nested ones included), the
/// database URL redacted by its own rule, secrets as `***`.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut value = match serde_json::to_value(self.redacted()) {
            Ok(value) => value,
            Err(_) => return f.write_str("Settings(unprintable)"),
        };
        redact_value(&mut value);
        let text = if f.alternate() {
            serde_json::to_string_pretty(&value)
        } else {
            serde_json::to_string(&value)
        }
        .map_err(|_| fmt::Error)?;
        write!(f, "Settings {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, SecretUrl};

    #[test]
    fn no_credential_of_any_setting_is_printed() {
        let secrets = [
            "dbpass1",
            "dbquery2",
            "amqp3",
            "catuser4",
            "catpass5",
            "cattoken6",
            "eopass7",
            "outpass8",
            "dumppass9",
            "rootpass10",
            "nomadpass11",
            "nomadtoken12",
            "write13",
            "read14",
            "orchpass15",
            "hostpass16",
        ];
        let settings = Settings {
            database_url: SecretUrl::new(
                "postgres://swath:dbpass1@db:5432/swath?sslmode=require&password=dbquery2",
            ),
            rabbitmq_url: Some(Secret::new("amqp://swath:amqp3@broker:5672/%2f")),
            catalogue: "odata+https://catuser4:catpass5@catalogue.example/odata/v1?token=cattoken6"
                .into(),
            eodata_url: "s3://key:eopass7@eodata".into(),
            output_url: "s3://key:outpass8@outputs/products".into(),
            dump_url: "s3://key:dumppass9@private/dumps".into(),
            input_extra_roots: vec!["s3://key:rootpass10@archive/l1c".into()],
            nomad_addr: "https://ops:nomadpass11@nomad.example:4646".into(),
            nomad_token: Some(Secret::new("nomadtoken12")),
            api_write_token: Some(Secret::new("write13")),
            api_read_token: Some(Secret::new("read14")),
            orchestrator_url: "https://w:orchpass15@swath.example".into(),
            publication_target: swath_domain::publication::PublicationTarget {
                host_base: "https://k:hostpass16@s3.example".into(),
                ..Default::default()
            },
            ..Settings::default()
        };
        for printed in [
            format!("{settings:?}"),
            format!("{settings:#?}"),
            format!("{:?}", settings.database_url),
            format!("{:?}", settings.nomad_config().unwrap()),
            toml::to_string(&settings.redacted()).unwrap(),
        ] {
            for secret in secrets {
                assert!(!printed.contains(secret), "{secret} in {printed}");
            }
        }
        let printed = format!("{settings:?}");
        assert!(
            printed.contains("catalogue.example") && printed.contains("@db:5432/swath"),
            "still says where things are: {printed}"
        );
    }
}
