//! Validation of Nomad HTTP requests and responses against Nomad's OpenAPI description.
