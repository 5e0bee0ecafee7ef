//! The Nomad job files in `nomad/` (Nomad's service discovery) and `nomad/consul/` (Consul's) and
//! the jobs swath registers are the same jobs: every worker file, parsed as HCL and read the way
//! Nomad reads job files, equals the JSON swath registers for its flavor; the orchestrator's
//! service job runs `swath serve` with settings swath accepts and registers the very service its
//! workers look up.

use swath_engine::config::{ServiceProvider, Settings};
use swath_engine::executor::nomad::hcl::{
    service_job_hcl, worker_job_file_name, worker_job_hcl, SERVICE_JOB_FILE,
};
use swath_engine::executor::nomad::spec::worker_job;

use support::jobspec::job_from_hcl;

/// The settings the shipped files were written with (see `nomad/README.md`): the defaults, and
/// `SWATH_NOMAD_SERVICE_PROVIDER=consul` for `nomad/consul/`.
fn shipped_settings(provider: ServiceProvider) -> Settings {
    Settings {
        nomad_service_provider: provider,
        ..Settings::default()
    }
}

fn nomad_dir(provider: ServiceProvider) -> std::path::PathBuf {
    let dir = support::workspace_root().join("nomad");
    match provider {
        ServiceProvider::Nomad => dir.to_path_buf(),
        ServiceProvider::Consul => dir.join("consul"),
    }
}

const PROVIDERS: [ServiceProvider; 2] = [ServiceProvider::Nomad, ServiceProvider::Consul];

#[test]
fn every_worker_file_is_the_job_swath_registers_for_its_flavor() {
    for provider in PROVIDERS {
        worker_files_are_the_registered_jobs(provider);
    }
}

fn worker_files_are_the_registered_jobs(provider: ServiceProvider) {
    let settings = shipped_settings(provider);
    let jobs = settings.nomad_config().unwrap().jobs;
    let mut files: Vec<_> = std::fs::read_dir(nomad_dir(provider))
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
        let path = nomad_dir(provider).join(worker_job_file_name(&jobs, flavor));
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
    let settings = shipped_settings(ServiceProvider::Nomad);
    let jobs = settings.nomad_config().unwrap().jobs;
    let flavor = &settings.flavors[0];
    let text = worker_job_hcl(&jobs, flavor).replace("attempts = 0", "attempts = 3");
    assert_ne!(job_from_hcl(&text), worker_job(&jobs, flavor));
}

#[test]
fn the_service_job_registers_the_service_its_workers_look_up() {
    for provider in PROVIDERS {
        let settings = shipped_settings(provider);
        let jobs = settings.nomad_config().unwrap().jobs;
        let path = nomad_dir(provider).join(SERVICE_JOB_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            service_job_hcl(&jobs, settings.listen_port()),
            "{} is not what `swath nomad hcl` writes: regenerate it",
            path.display()
        );
        let service_job = job_from_hcl(&text);
        let group = &service_job["TaskGroups"][0];
        let service = &group["Services"][0];
        let port = group["Networks"][0]["ReservedPorts"][0]["Value"]
            .as_u64()
            .unwrap();
        let worker = job_from_hcl(
            &std::fs::read_to_string(
                nomad_dir(provider).join(worker_job_file_name(&jobs, &settings.flavors[0])),
            )
            .unwrap(),
        );
        let task = &worker["TaskGroups"][0]["Tasks"][0];
        match provider {
            // A Nomad service is only in Nomad's catalogue: the worker reads it with
            // `nomadService` into its environment, never through Consul DNS.
            ServiceProvider::Nomad => {
                assert_eq!(service["Provider"], "nomad");
                let template = &task["Templates"][0];
                assert_eq!(template["Envvars"], true);
                let data = template["EmbeddedTmpl"].as_str().unwrap();
                let lookup = format!("nomadService {:?}", service["Name"].as_str().unwrap());
                assert!(data.contains(&lookup), "{data}");
                assert!(data
                    .contains("SWATH_WORKER_ORCHESTRATOR_URL=http://{{ .Address }}:{{ .Port }}"));
                assert!(task["Env"].get("SWATH_WORKER_ORCHESTRATOR_URL").is_none());
                assert!(
                    !text.contains(".service.consul")
                        && !worker.to_string().contains(".service.consul")
                );
            }
            ServiceProvider::Consul => {
                assert_eq!(service["Provider"], "consul");
                let name = service["Name"].as_str().unwrap();
                assert_eq!(
                    task["Env"]["SWATH_WORKER_ORCHESTRATOR_URL"],
                    format!("http://{name}.service.consul:{port}")
                );
                assert!(task.get("Templates").is_none());
            }
        }
        service_job_settings_are_valid(&service_job, provider);
    }
}

#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
fn service_job_settings_are_valid(job: &serde_json::Value, provider: ServiceProvider) {
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
        env["SWATH_NOMAD_JOB_PREFIX"],
        Settings::default().nomad_job_prefix.as_str()
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
    // The values that are literal are valid settings, and give the workers the same discovery.
    figment::Jail::expect_with(|jail| {
        for (name, value) in env {
            let value = value.as_str().unwrap();
            if !value.contains("${") {
                jail.set_env(name, value);
            }
        }
        let settings = swath_engine::startup::load_settings(None)
            .expect("the service job's settings are valid");
        assert_eq!(settings.executor, swath_engine::config::ExecutorKind::Nomad);
        assert_eq!(
            settings.nomad_discovery(),
            shipped_settings(provider).nomad_discovery(),
            "the orchestrator's settings write the worker jobs of the files beside it"
        );
        Ok(())
    });
}
