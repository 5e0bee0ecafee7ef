//! The Nomad job files in `nomad/` and the jobs swath registers are the same jobs: every worker
//! file, parsed as HCL and read the way Nomad reads job files, equals the JSON swath registers for
//! its flavor; and the orchestrator's service job runs `swath serve` with settings swath accepts.

mod support;

use std::path::Path;

use swath::config::Settings;
use swath::executor::nomad::hcl::{worker_job_file_name, worker_job_hcl};
use swath::executor::nomad::spec::worker_job;

use support::jobspec::job_from_hcl;

/// The settings the shipped worker files were written with (see `nomad/README.md`).
fn shipped_settings() -> Settings {
    Settings {
        orchestrator_url: "http://swath.service.consul:8080".into(),
        ..Settings::default()
    }
}

fn nomad_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/nomad"))
}

#[test]
fn every_worker_file_is_the_job_swath_registers_for_its_flavor() {
    let settings = shipped_settings();
    let jobs = settings.nomad_config().unwrap().jobs;
    let mut files: Vec<_> = std::fs::read_dir(nomad_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&jobs.job_prefix))
        .collect();
    files.sort();
    let mut expected: Vec<_> = settings
        .flavors
        .iter()
        .map(|f| worker_job_file_name(&jobs, f))
        .collect();
    expected.sort();
    assert_eq!(files, expected, "one file per flavor, no stale file");
    for flavor in &settings.flavors {
        let path = nomad_dir().join(worker_job_file_name(&jobs, flavor));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            job_from_hcl(&text),
            worker_job(&jobs, flavor),
            "{} differs from the job swath registers",
            path.display()
        );
        assert_eq!(
            text,
            worker_job_hcl(&jobs, flavor),
            "{} is not what `swath nomad hcl` writes: regenerate it",
            path.display()
        );
    }
}

#[test]
fn the_reader_sees_a_changed_value() {
    let settings = shipped_settings();
    let jobs = settings.nomad_config().unwrap().jobs;
    let flavor = &settings.flavors[0];
    let text = worker_job_hcl(&jobs, flavor).replace("attempts = 0", "attempts = 3");
    assert_ne!(job_from_hcl(&text), worker_job(&jobs, flavor));
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
fn the_service_job_runs_swath_serve_with_settings_swath_accepts() {
    let text = std::fs::read_to_string(nomad_dir().join("swath.nomad.hcl")).unwrap();
    let job = job_from_hcl(&text);
    assert_eq!(job["Type"], "service");
    let group = &job["TaskGroups"][0];
    let port = group["Networks"][0]["ReservedPorts"][0]["Value"]
        .as_u64()
        .unwrap();
    let task = &group["Tasks"][0];
    assert_eq!(task["Config"]["args"], serde_json::json!(["serve"]));
    let env = task["Env"].as_object().unwrap();
    assert_eq!(env["SWATH_EXECUTOR"], "nomad");
    assert_eq!(env["SWATH_LISTEN"], format!("0.0.0.0:{port}"));
    assert_eq!(
        env["SWATH_ORCHESTRATOR_URL"],
        shipped_settings().orchestrator_url.as_str(),
        "the workers' URL in the worker files"
    );
    assert_eq!(
        env["SWATH_NOMAD_JOB_PREFIX"],
        shipped_settings().nomad_job_prefix.as_str()
    );
    let template = task["Templates"][0]["EmbeddedTmpl"].as_str().unwrap();
    // Every variable the job sets, in `env` or from the secrets template, is a setting swath knows.
    let known = serde_json::to_value(Settings::default()).unwrap();
    let from_template = template
        .lines()
        .filter_map(|l| l.trim().split_once('=').map(|(k, _)| k.to_string()));
    for name in env.keys().cloned().chain(from_template) {
        let key = name
            .strip_prefix("SWATH_")
            .unwrap_or_else(|| panic!("{name} is not a swath setting"))
            .to_ascii_lowercase();
        assert!(
            known.get(&key).is_some() || key == "nomad_token",
            "{name} is not a setting swath knows"
        );
    }
    // The values that are literal are valid settings.
    figment::Jail::expect_with(|jail| {
        for (name, value) in env {
            let value = value.as_str().unwrap();
            if !value.contains("${") {
                jail.set_env(name, value);
            }
        }
        let settings = Settings::load(None).expect("the service job's settings are valid");
        assert_eq!(settings.executor, swath::config::ExecutorKind::Nomad);
        Ok(())
    });
}
