//! A reader of the Nomad HCL job files swath ships (`nomad/`): HCL parsed by `hcl-rs`, then turned
//! into the JSON Nomad's API takes, the way Nomad's own jobspec parser maps blocks and attributes.
//! It knows exactly the blocks and attributes swath's files use and fails on any other, so that a
//! file cannot say something this reader would silently drop.

use hcl::expr::{Expression, ObjectKey, TemplateExpr};
use hcl::{Block, Body};
use serde_json::{json, Map, Value};

/// Parses a job file into Nomad's JSON `Job` object.
pub fn job_from_hcl(text: &str) -> Value {
    let body = hcl::parse(text).expect("the job file is valid HCL");
    let job = body
        .blocks()
        .find(|b| b.identifier() == "job")
        .expect("a job block");
    let id = label(job);
    let mut out = Map::new();
    out.insert("ID".into(), json!(id));
    out.insert("Name".into(), json!(id));
    fill(&mut out, &job.body, &JOB);
    Value::Object(out)
}

/// How one block maps: attribute names, nested blocks, and blocks that are plain maps.
struct BlockMap {
    attributes: &'static [(&'static str, &'static str)],
    /// (HCL block, JSON key, mapping, repeated: a list of objects with the label as `Name`).
    blocks: &'static [(&'static str, &'static str, &'static BlockMap, bool)],
    /// (HCL block, JSON key) of blocks whose attributes are free keys (`meta`, `env`, `config`).
    maps: &'static [(&'static str, &'static str)],
}

const CONSTRAINT: BlockMap = BlockMap {
    attributes: &[
        ("attribute", "LTarget"),
        ("operator", "Operand"),
        ("value", "RTarget"),
    ],
    blocks: &[],
    maps: &[],
};
const PARAMETERIZED: BlockMap = BlockMap {
    attributes: &[
        ("payload", "Payload"),
        ("meta_required", "MetaRequired"),
        ("meta_optional", "MetaOptional"),
    ],
    blocks: &[],
    maps: &[],
};
const RESTART: BlockMap = BlockMap {
    attributes: &[("attempts", "Attempts"), ("mode", "Mode")],
    blocks: &[],
    maps: &[],
};
const RESCHEDULE: BlockMap = BlockMap {
    attributes: &[("attempts", "Attempts"), ("unlimited", "Unlimited")],
    blocks: &[],
    maps: &[],
};
const EPHEMERAL_DISK: BlockMap = BlockMap {
    attributes: &[("size", "SizeMB")],
    blocks: &[],
    maps: &[],
};
const DISPATCH_PAYLOAD: BlockMap = BlockMap {
    attributes: &[("file", "File")],
    blocks: &[],
    maps: &[],
};
const RESOURCES: BlockMap = BlockMap {
    attributes: &[("cores", "Cores"), ("cpu", "CPU"), ("memory", "MemoryMB")],
    blocks: &[],
    maps: &[],
};
const PORT: BlockMap = BlockMap {
    attributes: &[("static", "Value")],
    blocks: &[],
    maps: &[],
};
const NETWORK: BlockMap = BlockMap {
    attributes: &[],
    blocks: &[("port", "ReservedPorts", &PORT, true)],
    maps: &[],
};
const SERVICE: BlockMap = BlockMap {
    attributes: &[
        ("name", "Name"),
        ("port", "PortLabel"),
        ("provider", "Provider"),
    ],
    blocks: &[],
    maps: &[],
};
const TEMPLATE: BlockMap = BlockMap {
    attributes: &[
        ("destination", "DestPath"),
        ("env", "Envvars"),
        ("change_mode", "ChangeMode"),
        ("data", "EmbeddedTmpl"),
    ],
    blocks: &[],
    maps: &[],
};
const TASK: BlockMap = BlockMap {
    attributes: &[("driver", "Driver"), ("kill_timeout", "KillTimeout")],
    blocks: &[
        (
            "dispatch_payload",
            "DispatchPayload",
            &DISPATCH_PAYLOAD,
            false,
        ),
        ("resources", "Resources", &RESOURCES, false),
        ("template", "Templates", &TEMPLATE, true),
    ],
    maps: &[("config", "Config"), ("env", "Env"), ("meta", "Meta")],
};
const GROUP: BlockMap = BlockMap {
    attributes: &[("count", "Count")],
    blocks: &[
        ("restart", "RestartPolicy", &RESTART, false),
        ("reschedule", "ReschedulePolicy", &RESCHEDULE, false),
        ("ephemeral_disk", "EphemeralDisk", &EPHEMERAL_DISK, false),
        ("network", "Networks", &NETWORK, true),
        ("service", "Services", &SERVICE, true),
        ("task", "Tasks", &TASK, true),
    ],
    maps: &[("meta", "Meta")],
};
const JOB: BlockMap = BlockMap {
    attributes: &[
        ("type", "Type"),
        ("namespace", "Namespace"),
        ("datacenters", "Datacenters"),
        ("node_pool", "NodePool"),
        ("priority", "Priority"),
    ],
    blocks: &[
        ("parameterized", "ParameterizedJob", &PARAMETERIZED, false),
        ("constraint", "Constraints", &CONSTRAINT, true),
        ("group", "TaskGroups", &GROUP, true),
    ],
    maps: &[("meta", "Meta")],
};

fn label(block: &Block) -> Option<String> {
    block.labels().first().map(|l| l.as_str().to_string())
}

fn fill(out: &mut Map<String, Value>, body: &Body, map: &BlockMap) {
    for attribute in body.attributes() {
        let key = attribute.key();
        let (_, json_key) = map
            .attributes
            .iter()
            .find(|(hcl, _)| *hcl == key)
            .unwrap_or_else(|| panic!("attribute {key:?} is not known to this reader"));
        let mut value = value(attribute.expr());
        if key == "kill_timeout" {
            value = json!(duration_nanos(value.as_str().expect("a duration string")));
        }
        out.insert((*json_key).into(), value);
    }
    for block in body.blocks() {
        let name = block.identifier();
        if let Some((_, json_key)) = map.maps.iter().find(|(hcl, _)| *hcl == name) {
            let entries: Map<String, Value> = block
                .body
                .attributes()
                .map(|a| (a.key().to_string(), value(a.expr())))
                .collect();
            out.insert((*json_key).into(), Value::Object(entries));
            continue;
        }
        let (_, json_key, inner, repeated) = map
            .blocks
            .iter()
            .find(|(hcl, ..)| *hcl == name)
            .unwrap_or_else(|| panic!("block {name:?} is not known to this reader"));
        let mut object = Map::new();
        if let Some(label) = label(block) {
            let label_key = if name == "port" { "Label" } else { "Name" };
            object.insert(label_key.into(), json!(label));
        }
        fill(&mut object, &block.body, inner);
        if *repeated {
            out.entry(*json_key)
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .expect("a list")
                .push(Value::Object(object));
        } else {
            out.insert((*json_key).into(), Value::Object(object));
        }
    }
}

fn value(expr: &Expression) -> Value {
    match expr {
        Expression::Null => Value::Null,
        Expression::Bool(b) => json!(b),
        Expression::Number(n) => serde_json::to_value(n).expect("a JSON number"),
        Expression::String(s) => json!(s),
        Expression::Array(items) => Value::Array(items.iter().map(value).collect()),
        Expression::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        ObjectKey::Identifier(i) => i.to_string(),
                        ObjectKey::Expression(e) => value(e).as_str().expect("a string key").into(),
                        other => panic!("object key {other:?}"),
                    };
                    (key, value(v))
                })
                .collect(),
        ),
        // Nomad leaves runtime interpolations (`${node.class}`) in place; `$${` is a literal `${`.
        Expression::TemplateExpr(t) => match t.as_ref() {
            TemplateExpr::QuotedString(s) => json!(s.replace("$${", "${")),
            TemplateExpr::Heredoc(h) => json!(dedent(h.template.as_str())),
        },
        other => panic!("expression {other:?} is not known to this reader"),
    }
}

/// An indented heredoc (`<<-`) without its common indentation (its final newline kept).
fn dedent(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = text
        .lines()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Nomad's duration strings (`30s`, `5m`, `1h`) in nanoseconds.
pub fn duration_nanos(text: &str) -> u64 {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_alphabetic()).expect("a unit"));
    let number: u64 = number.parse().expect("a whole number");
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        other => panic!("duration unit {other:?}"),
    };
    number * seconds * 1_000_000_000
}
