//! The worker jobs as Nomad HCL, for operators who keep their job files in version control or run
//! them with `nomad job run`: the same job [`super::spec::worker_job`] registers, written by
//! `swath nomad hcl`. The files in the repository's `nomad/` directory are its output for the
//! default settings; a test parses them and compares them with what swath registers.

use std::fmt::Write;

use swath_job_types::flavor::WorkerFlavor;

use super::spec::{parent_job_id, WorkerJobSettings, GROUP, META_KEYS, TASK, TOKEN_FILE};

/// A literal HCL string: quotes and backslashes escaped, `${` and `%{` kept literal.
fn quote(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace("${", "$${")
        .replace("%{", "%%{");
    format!("\"{escaped}\"")
}

fn list(values: &[&str]) -> String {
    let items: Vec<_> = values.iter().map(|v| quote(v)).collect();
    format!("[{}]", items.join(", "))
}

/// Nomad's duration syntax for whole seconds.
fn seconds(duration: std::time::Duration) -> String {
    format!("\"{}s\"", duration.as_secs())
}

/// The HCL of the worker job of `flavor`.
pub fn worker_job_hcl(settings: &WorkerJobSettings, flavor: &WorkerFlavor) -> String {
    let datacenters: Vec<&str> = settings.datacenters.iter().map(String::as_str).collect();
    let mut out = String::new();
    let w = &mut out;
    // Writing to a String cannot fail.
    let _ = writeln!(
        w,
        "# Worker job of flavor {name}: written by `swath nomad hcl`; swath registers the same job\n\
         # itself at start-up. Dispatched once per job attempt; the worker token arrives as the payload.",
        name = flavor.name
    );
    let _ = writeln!(w, "job {} {{", quote(&parent_job_id(settings, flavor)));
    let _ = writeln!(w, "  type        = \"batch\"");
    let _ = writeln!(w, "  namespace   = {}", quote(&settings.namespace));
    let _ = writeln!(w, "  datacenters = {}", list(&datacenters));
    let _ = writeln!(w, "  node_pool   = {}", quote(&settings.node_pool));
    let _ = writeln!(w, "  priority    = 50\n");
    let _ = writeln!(w, "  parameterized {{");
    let _ = writeln!(w, "    payload       = \"required\"");
    let _ = writeln!(w, "    meta_required = {}", list(&META_KEYS));
    let _ = writeln!(w, "    meta_optional = []");
    let _ = writeln!(w, "  }}\n");
    let _ = writeln!(w, "  meta {{");
    let _ = writeln!(w, "    swath_flavor = {}", quote(&flavor.name));
    let _ = writeln!(w, "  }}\n");
    let _ = writeln!(w, "  constraint {{");
    let _ = writeln!(w, "    attribute = \"${{node.class}}\"");
    let _ = writeln!(w, "    operator  = \"=\"");
    let _ = writeln!(w, "    value     = {}", quote(&flavor.node_class));
    let _ = writeln!(w, "  }}\n");
    let _ = writeln!(w, "  group \"{GROUP}\" {{");
    let _ = writeln!(w, "    count = 1\n");
    let _ = writeln!(
        w,
        "    restart {{\n      attempts = 0\n      mode     = \"fail\"\n    }}\n"
    );
    let _ = writeln!(
        w,
        "    reschedule {{\n      attempts  = 0\n      unlimited = false\n    }}\n"
    );
    let _ = writeln!(
        w,
        "    ephemeral_disk {{\n      size = {}\n    }}\n",
        flavor.disk_gb * 1024
    );
    let _ = writeln!(w, "    task \"{TASK}\" {{");
    let _ = writeln!(w, "      driver = \"raw_exec\"\n");
    let _ = writeln!(w, "      config {{");
    let _ = writeln!(w, "        command = {}", quote(&settings.worker_command));
    let _ = writeln!(w, "        args    = [\"run\"]");
    let _ = writeln!(w, "      }}\n");
    let _ = writeln!(w, "      env {{");
    let _ = writeln!(
        w,
        "        SWATH_WORKER_ORCHESTRATOR_URL = {}",
        quote(&settings.orchestrator_url)
    );
    let _ = writeln!(
        w,
        "        SWATH_WORKER_WORK_ROOT        = {}",
        quote(&settings.work_root)
    );
    let _ = writeln!(
        w,
        "        SWATH_WORKER_TOKEN_FILE       = \"${{NOMAD_TASK_DIR}}/{TOKEN_FILE}\""
    );
    let _ = writeln!(w, "      }}\n");
    let _ = writeln!(
        w,
        "      dispatch_payload {{\n        file = \"{TOKEN_FILE}\"\n      }}\n"
    );
    let _ = writeln!(
        w,
        "      resources {{\n        cores  = {}\n        memory = {}\n      }}\n",
        flavor.cpus, flavor.memory_mb
    );
    let _ = writeln!(w, "      kill_timeout = {}", seconds(settings.kill_timeout));
    let _ = writeln!(w, "    }}\n  }}\n}}");
    out
}

/// The file name of the worker job of `flavor`.
pub fn worker_job_file_name(settings: &WorkerJobSettings, flavor: &WorkerFlavor) -> String {
    format!("{}.nomad.hcl", parent_job_id(settings, flavor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_values_cannot_inject_hcl_or_interpolations() {
        assert_eq!(quote(r#"a"b\c${x}%{y}"#), r#""a\"b\\c$${x}%%{y}""#);
    }
}
