//! Corrections to Nomad's OpenAPI description where it disagrees with what Nomad really sends and
//! accepts, each citing `nomad-api.md` (a research note on Nomad's HTTP API, cited by section).
//!
//! The description is generated from the Go client's structs of an older Nomad, so it misses fields
//! that later versions (and the server's own response structs) carry. Every override adds exactly
//! one property to one schema; none loosens a type or the strictness on unknown properties. Loading
//! fails if an override's schema is missing or already declares the property, so a newer
//! description makes a stale override visible instead of silently shadowing it.

use serde_json::{json, Value};

/// One property added to one schema of `components/schemas`.
pub(super) struct PropertyOverride {
    /// The schema name, e.g. `JobDispatchRequest`.
    pub schema: &'static str,
    /// The property added to it.
    pub property: &'static str,
    /// The OpenAPI schema of the property.
    pub definition: Value,
    /// Why, citing nomad-api.md.
    pub reason: &'static str,
}

/// Parameters the description declares `in: header` that Nomad reads from the query string, with
/// the reason.
pub(super) const HEADER_PARAMS_READ_FROM_QUERY: &[(&str, &str)] = &[(
    "index",
    "blocking queries send `?index=<N>&wait=<dur>` in the query string (nomad-api.md §4)",
)];

/// The property overrides, applied once when the description is loaded.
pub(super) fn property_overrides() -> Vec<PropertyOverride> {
    let uint64 = json!({"$ref": "#/components/schemas/uint64"});
    let add = |schema, property, definition, reason| PropertyOverride {
        schema,
        property,
        definition,
        reason,
    };
    vec![
        add(
            "Job",
            "NodePool",
            json!({"type": "string"}),
            "jobs carry a node pool, sent in the register request (nomad-api.md §1.2, §1.3)",
        ),
        add(
            "RestartPolicy",
            "RenderTemplates",
            json!({"type": "boolean"}),
            "a restart policy field (nomad-api.md §1.3)",
        ),
        add(
            "JobRegisterRequest",
            "PreserveResources",
            json!({"type": "boolean"}),
            "a field of api.JobRegisterRequest (nomad-api.md §1.1)",
        ),
        add(
            "JobRegisterRequest",
            "Submission",
            json!({"type": "object", "properties": {
                "Source": {"type": "string"},
                "Format": {"type": "string"},
                "VariableFlags": {"type": "object", "additionalProperties": {"type": "string"}},
                "Variables": {"type": "string"},
            }}),
            "the job's source, an api.JobSubmission (nomad-api.md §1.1, §1.4)",
        ),
        add(
            "JobsParseRequest",
            "Variables",
            json!({"type": "string"}),
            "the HCL2 variables of /jobs/parse (nomad-api.md §1.4, Appendix A)",
        ),
        add(
            "JobDispatchRequest",
            "IdPrefixTemplate",
            json!({"type": "string"}),
            "inserted into the child job ID (nomad-api.md §2.1, §2.4)",
        ),
        add(
            "JobDispatchRequest",
            "Priority",
            json!({"type": "integer"}),
            "the child's priority, 0 inheriting the parent's (nomad-api.md §2.1)",
        ),
        add(
            "JobDispatchRequest",
            "IdempotencyToken",
            json!({"type": "string"}),
            "the token may come in the body, from the embedded WriteRequest (nomad-api.md §2.1)",
        ),
        add(
            "JobDispatchResponse",
            "Index",
            uint64.clone(),
            "the server sends its WriteMeta `Index`; the description has the Go client's \
             LastIndex/RequestTime instead (nomad-api.md §2.2)",
        ),
        add(
            "JobRegisterResponse",
            "Index",
            uint64.clone(),
            "the server sends `Index` (nomad-api.md §1.1 response sample)",
        ),
        add(
            "JobDeregisterResponse",
            "Index",
            uint64.clone(),
            "the server sends `Index` (nomad-api.md §5)",
        ),
        add(
            "JobDeregisterResponse",
            "VolumeEvalID",
            json!({"type": "string"}),
            "a field of structs.JobDeregisterResponse (nomad-api.md §5)",
        ),
        add(
            "JobDeregisterResponse",
            "VolumeEvalIndex",
            uint64,
            "a field of structs.JobDeregisterResponse (nomad-api.md §5)",
        ),
        add(
            "AllocationListStub",
            "DesiredTransition",
            json!({"$ref": "#/components/schemas/DesiredTransition"}),
            "always present in AllocListStub (nomad-api.md §3.1, Appendix B)",
        ),
        add(
            "AllocationListStub",
            "NextAllocation",
            json!({"type": "string"}),
            "always present in AllocListStub, read to find the latest alloc (nomad-api.md §3.1, \
             §3.4, Appendix B)",
        ),
        add(
            "DesiredTransition",
            "ForceReschedule",
            json!({"type": "boolean"}),
            "a pointer field of DesiredTransition (nomad-api.md Appendix B)",
        ),
        add(
            "DesiredTransition",
            "NoShutdownDelay",
            json!({"type": "boolean"}),
            "a pointer field of DesiredTransition (nomad-api.md Appendix B)",
        ),
        add(
            "DesiredTransition",
            "MigrateDisablePlacement",
            json!({"type": "boolean"}),
            "a pointer field of DesiredTransition (nomad-api.md Appendix B)",
        ),
        add(
            "TaskState",
            "Paused",
            json!({"type": "string"}),
            "always present in TaskState, an Enterprise-only string (nomad-api.md §3.1, Appendix B)",
        ),
    ]
}

/// Adds every [`property_overrides`] entry to `doc`.
///
/// # Panics
/// If an override's schema has no `properties` or already declares the property.
pub(super) fn apply(doc: &mut Value) {
    for o in property_overrides() {
        let properties = doc
            .pointer_mut(&format!("/components/schemas/{}/properties", o.schema))
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| {
                panic!(
                    "override {}.{} ({}): the description has no schema {} with properties",
                    o.schema, o.property, o.reason, o.schema
                )
            });
        assert!(
            !properties.contains_key(o.property),
            "override {}.{} ({}) is stale: the description now declares it",
            o.schema,
            o.property,
            o.reason
        );
        properties.insert(o.property.to_string(), o.definition);
    }
}
