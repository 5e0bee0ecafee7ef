//! The Nomad jobs as HCL, for operators who keep their job files in version control or run them
//! with `nomad job run`: the worker jobs [`super::spec::worker_job`] registers, and the
//! orchestrator's own service job, written together by `swath nomad hcl` so that the service the
//! orchestrator registers and the way the workers look it up always agree. The files in the
//! repository's `nomad/` directory are its output for the default settings; a test parses them and
//! compares them with what swath registers.

use std::fmt::Write;

use swath_domain::flavor::WorkerFlavor;

use super::spec::{
    parent_job_id, Discovery, WorkerJobSettings, DISCOVERY_FILE, GROUP, META_KEYS, TASK,
    TOKEN_FILE, URL_VARIABLE,
};

/// A literal HCL string: quotes and backslashes escaped, `${` and `%{` kept literal.
fn quote(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace("${", "$${")
        .replace("%{", "%%{");
    format!("\"{escaped}\"")
}

/// A string Nomad interpolates at placement (`${attr.…}`, `${node.class}`): written as is. The
/// flavor table admits only `${` + name characters + `}` here, so nothing else can be injected.
fn interpolation(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn list(values: &[&str]) -> String {
    let items: Vec<_> = values.iter().map(|v| quote(v)).collect();
    format!("[{}]", items.join(", "))
}

/// Nomad's duration syntax for whole seconds.
fn seconds(duration: std::time::Duration) -> String {
    format!("\"{}s\"", duration.as_secs())
}

/// An indented heredoc (`<<-EOT`) holding `text`, which ends with a newline and has no `${`/`%{`
/// (a Nomad template, not an HCL one: `{{ }}` is literal in HCL).
fn heredoc(text: &str, indent: &str) -> String {
    let mut out = String::from("<<-EOT\n");
    for line in text.lines() {
        let _ = writeln!(out, "{indent}  {line}");
    }
    let _ = write!(out, "{indent}EOT");
    out
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
    let _ = writeln!(w, "  # The kind of VM this flavor's request is sized for.");
    let _ = writeln!(w, "  constraint {{");
    let _ = writeln!(
        w,
        "    attribute = {}",
        interpolation(&flavor.placement_attribute)
    );
    let _ = writeln!(w, "    operator  = \"=\"");
    let _ = writeln!(w, "    value     = {}", quote(flavor.placement_value()));
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
    if let Some(template) = settings.discovery.template() {
        let _ = writeln!(
            w,
            "      # The orchestrator's address, from the Nomad service it registers."
        );
        let _ = writeln!(w, "      template {{");
        let _ = writeln!(w, "        destination = {}", quote(DISCOVERY_FILE));
        let _ = writeln!(w, "        env         = true");
        let _ = writeln!(w, "        change_mode = \"noop\"");
        let _ = writeln!(
            w,
            "        data        = {}",
            heredoc(&template, "        ")
        );
        let _ = writeln!(w, "      }}\n");
    }
    let _ = writeln!(w, "      env {{");
    if let Discovery::Consul { url, .. } = &settings.discovery {
        let _ = writeln!(w, "        {URL_VARIABLE:<30} = {}", quote(url));
    }
    let _ = writeln!(
        w,
        "        SWATH_WORKER_WORK_ROOT         = {}",
        quote(&settings.work_root)
    );
    // The worker stops its container within the kill timeout, before Nomad's SIGKILL.
    let _ = writeln!(
        w,
        "        SWATH_WORKER_KILL_TIMEOUT_SECS = \"{}\"",
        settings.kill_timeout.as_secs()
    );
    let _ = writeln!(
        w,
        "        SWATH_WORKER_TOKEN_FILE        = \"${{NOMAD_TASK_DIR}}/{TOKEN_FILE}\""
    );
    let _ = writeln!(w, "      }}\n");
    let _ = writeln!(
        w,
        "      dispatch_payload {{\n        file = \"{TOKEN_FILE}\"\n      }}\n"
    );
    let cpu = match flavor.cpu_mhz {
        Some(mhz) => format!("cpu    = {mhz}"),
        None => format!("cores  = {}", flavor.cpus),
    };
    let _ = writeln!(
        w,
        "      resources {{\n        {cpu}\n        memory = {}\n      }}\n",
        flavor.memory_mb
    );
    let _ = writeln!(w, "      kill_timeout = {}", seconds(settings.kill_timeout));
    let _ = writeln!(w, "    }}\n  }}\n}}");
    out
}

/// The file name of the worker job of `flavor`.
pub fn worker_job_file_name(settings: &WorkerJobSettings, flavor: &WorkerFlavor) -> String {
    format!("{}.nomad.hcl", parent_job_id(settings, flavor))
}

/// The file name of the orchestrator's service job.
pub const SERVICE_JOB_FILE: &str = "swath.nomad.hcl";

/// The HCL of the orchestrator's service job: `swath serve` with the Nomad executor, listening on
/// `port` and registering the service the worker jobs look up ([`WorkerJobSettings::discovery`]).
pub fn service_job_hcl(settings: &WorkerJobSettings, port: u16) -> String {
    let datacenters: Vec<&str> = settings.datacenters.iter().map(String::as_str).collect();
    let discovery = &settings.discovery;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# The orchestrator as a Nomad service job, written by `swath nomad hcl` with the worker jobs:\n\
         # `swath serve` with the Nomad executor, registering and dispatching the worker jobs of the\n\
         # other files in this directory, which find it as the {provider} service {service:?}.\n\
         # Secrets (database URL, Nomad token) come from the Nomad variable `nomad/jobs/swath`, never\n\
         # from this file.",
        provider = discovery.provider(),
        service = discovery.service(),
    );
    let _ = writeln!(w, "job \"swath\" {{");
    let _ = writeln!(w, "  type        = \"service\"");
    let _ = writeln!(w, "  namespace   = {}", quote(&settings.namespace));
    let _ = writeln!(w, "  datacenters = {}", list(&datacenters));
    let _ = writeln!(w, "  node_pool   = {}\n", quote(&settings.node_pool));
    let _ = writeln!(w, "  group \"orchestrator\" {{");
    let _ = writeln!(w, "    count = 1\n");
    let _ = writeln!(
        w,
        "    network {{\n      port \"http\" {{\n        static = {port}\n      }}\n    }}\n"
    );
    let _ = writeln!(w, "    service {{");
    let _ = writeln!(w, "      name     = {}", quote(discovery.service()));
    let _ = writeln!(w, "      port     = \"http\"");
    let _ = writeln!(w, "      provider = \"{}\"", discovery.provider());
    let _ = writeln!(w, "    }}\n");
    let _ = writeln!(w, "    task \"serve\" {{");
    let _ = writeln!(w, "      driver = \"raw_exec\"\n");
    let _ = writeln!(
        w,
        "      config {{\n        command = \"/usr/local/bin/swath\"\n        args    = [\"serve\"]\n      }}\n"
    );
    let secrets = "{{ with nomadVar \"nomad/jobs/swath\" }}\n\
                   SWATH_DATABASE_URL={{ .database_url }}\n\
                   SWATH_NOMAD_TOKEN={{ .nomad_token }}\n\
                   {{ end }}\n";
    let _ = writeln!(w, "      template {{");
    let _ = writeln!(w, "        destination = \"secrets/swath.env\"");
    let _ = writeln!(w, "        env         = true");
    let _ = writeln!(w, "        data        = {}", heredoc(secrets, "        "));
    let _ = writeln!(w, "      }}\n");
    let mut env: Vec<(&str, String)> = vec![
        ("SWATH_EXECUTOR", quote("nomad")),
        ("SWATH_LISTEN", quote(&format!("0.0.0.0:{port}"))),
        ("SWATH_NOMAD_SERVICE_PROVIDER", quote(discovery.provider())),
        ("SWATH_NOMAD_SERVICE_NAME", quote(discovery.service())),
    ];
    if let Discovery::Consul { url, .. } = discovery {
        env.push(("SWATH_ORCHESTRATOR_URL", quote(url)));
    }
    env.extend([
        (
            "SWATH_NOMAD_ADDR",
            interpolation("http://${attr.unique.network.ip-address}:4646"),
        ),
        ("SWATH_NOMAD_NAMESPACE", quote(&settings.namespace)),
        ("SWATH_NOMAD_JOB_PREFIX", quote(&settings.job_prefix)),
        ("SWATH_LOG_FORMAT", quote("json")),
    ]);
    let width = env.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let _ = writeln!(w, "      env {{");
    for (key, value) in env {
        let _ = writeln!(w, "        {key:width$} = {value}");
    }
    let _ = writeln!(w, "      }}\n");
    let _ = writeln!(
        w,
        "      resources {{\n        cpu    = 1000\n        memory = 512\n      }}\n"
    );
    let _ = writeln!(w, "      kill_timeout = \"60s\"");
    let _ = writeln!(w, "    }}\n  }}\n}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_values_cannot_inject_hcl_or_interpolations() {
        assert_eq!(quote(r#"a"b\c${x}%{y}"#), r#""a\"b\\c$${x}%%{y}""#);
    }

    #[test]
    fn the_service_job_registers_what_the_workers_look_up() {
        let mut settings = WorkerJobSettings::default();
        let nomad = service_job_hcl(&settings, 8080);
        assert!(nomad.contains("provider = \"nomad\""), "{nomad}");
        assert!(!nomad.contains("SWATH_ORCHESTRATOR_URL"), "{nomad}");
        settings.discovery = Discovery::Consul {
            service: "swath".into(),
            url: "http://swath.service.consul:8080".into(),
        };
        let consul = service_job_hcl(&settings, 8080);
        assert!(consul.contains("provider = \"consul\""), "{consul}");
        assert!(consul.contains("\"http://swath.service.consul:8080\""));
    }
}
