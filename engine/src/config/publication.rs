//! The publication settings: which publisher, where its messages go, and the republication cap.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Settings;

/// Where publication messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PublisherKind {
    /// A JSON-lines file (the embedded default).
    #[default]
    File,
    /// A RabbitMQ exchange, with publisher confirms.
    Rabbitmq,
}

/// How a publication message body is written (`SWATH_PUBLICATION_ENCODING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The feature as a JSON object (swath's default).
    #[default]
    Json,
    /// The feature as a JSON string holding the JSON (the original's format).
    DoubleEncoded,
}

impl Encoding {
    /// The body of `message`.
    pub fn body(self, message: &serde_json::Value) -> Vec<u8> {
        let json = message.to_string();
        match self {
            Encoding::Json => json.into_bytes(),
            Encoding::DoubleEncoded => serde_json::Value::String(json).to_string().into_bytes(),
        }
    }
}

/// The broker when `rabbitmq_url` is unset.
pub const DEFAULT_RABBITMQ_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

impl Settings {
    /// The broker's AMQP URL (secret: it holds the password).
    pub fn rabbitmq_url(&self) -> &str {
        self.rabbitmq_url
            .as_ref()
            .map_or(DEFAULT_RABBITMQ_URL, |u| u.expose())
    }

    /// The file of the `file` publisher.
    pub fn publication_file(&self) -> PathBuf {
        if self.publication_file.is_empty() {
            std::env::temp_dir().join("swath-publications.jsonl")
        } else {
            PathBuf::from(&self.publication_file)
        }
    }

    pub(super) fn validate_publication(&self, problems: &mut Vec<String>) {
        if self.publication_max_republish < 0 {
            problems.push("SWATH_PUBLICATION_MAX_REPUBLISH: must be 0 or more".into());
        }
        if !matches!(
            self.rabbitmq_exchange_kind.as_str(),
            "direct" | "topic" | "fanout"
        ) {
            problems.push(format!(
                "SWATH_RABBITMQ_EXCHANGE_KIND: {:?} is not direct, topic or fanout",
                self.rabbitmq_exchange_kind
            ));
        }
        match url::Url::parse(self.rabbitmq_url()) {
            Ok(u) if matches!(u.scheme(), "amqp" | "amqps") => {}
            _ => problems.push("SWATH_RABBITMQ_URL: not an amqp:// or amqps:// URL".into()),
        }
        if self.rabbitmq_failure_queue.is_empty() {
            problems.push("SWATH_RABBITMQ_FAILURE_QUEUE: must not be empty".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_publication_settings_are_reported() {
        let s = Settings {
            publication_max_republish: -1,
            rabbitmq_exchange_kind: "headers?".into(),
            rabbitmq_url: Some(super::super::Secret::new("http://x")),
            ..Settings::default()
        };
        let mut problems = Vec::new();
        s.validate_publication(&mut problems);
        assert_eq!(problems.len(), 3, "{problems:?}");
        Settings::default().validate().unwrap();
    }
}
