//! From a job type's task to an attempt's: storage locations resolved to the URLs workers use, the
//! flavor's limits, and the image a retry is pinned to.

use swath_domain::flavor::WorkerFlavor;
use swath_domain::protocol::AttemptTask;
use swath_domain::template::WorkerTask;
use swath_domain::Job;

use crate::catalogue::input_roots::{InputRefused, InputRoots};

/// Where workers read and write, and the flavor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLocations {
    /// Where catalogue paths under `/eodata/` are read from (`s3://bucket` or `file:///dir`).
    pub eodata_url: String,
    /// Where products are uploaded (`s3://bucket/prefix` or `file:///dir`).
    pub output_url: String,
    /// How input sources become URLs, and the roots they must lie under.
    pub inputs: InputRoots,
    /// The flavor table.
    pub flavors: Vec<WorkerFlavor>,
}

/// Why an attempt's task cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskBuildError {
    /// The job type's flavor is not in the flavor table (a configuration change since dispatch).
    #[error("flavor {0:?} is not in the flavor table")]
    UnknownFlavor(String),
    /// An input source lies outside the configured stores: the job cannot run, ever.
    #[error("input {name:?}: {refused}")]
    InputRefused {
        /// The input's name in the task.
        name: String,
        /// The refusal, naming the source and why.
        refused: InputRefused,
    },
}

impl TaskLocations {
    /// The URL a worker stages an input from, if it lies under the configured stores (see
    /// [`InputRoots::resolve`]): catalogue paths under `/eodata/` are read from `eodata_url`;
    /// products of the output store (`outputs:<path in the store>`) from the store's root; relative
    /// paths name what an earlier job wrote under the output URL (e.g. the L2A a time series
    /// continues from); `s3://` and `file:///` URLs are kept as they are.
    pub fn input_url(&self, source: &str) -> Result<String, InputRefused> {
        self.inputs.resolve(source)
    }

    /// The URL under which a worker uploads products of a job type's `prefix`.
    pub fn output_prefix_url(&self, prefix: &str) -> String {
        format!(
            "{}/{}",
            self.output_url.trim_end_matches('/'),
            prefix.trim_start_matches('/')
        )
    }

    /// The attempt's task: `task` with URLs, the job's uid and its flavor's limits; refused when its
    /// flavor is unknown or an input lies outside the configured stores.
    pub fn attempt_task(
        &self,
        job: &Job,
        mut task: WorkerTask,
    ) -> Result<AttemptTask, TaskBuildError> {
        let flavor = self
            .flavors
            .iter()
            .find(|f| f.name == task.flavor)
            .ok_or_else(|| TaskBuildError::UnknownFlavor(task.flavor.clone()))?;
        for input in &mut task.inputs {
            input.source =
                self.input_url(&input.source)
                    .map_err(|refused| TaskBuildError::InputRefused {
                        name: input.name.clone(),
                        refused,
                    })?;
        }
        if let Some(image) = pinned_image(job) {
            task.image = image.to_string();
        }
        for output in &mut task.outputs {
            output.destination_prefix = self.output_prefix_url(&output.destination_prefix);
        }
        Ok(AttemptTask {
            uid: job.uid,
            cpus: flavor.cpus,
            memory_mb: flavor.memory_mb,
            disk_mb: flavor.disk_gb.saturating_mul(1024),
            task,
        })
    }
}

/// The image a job is pinned to: for a retry, the one its chain ran with (`software_version`), when
/// that names an image (`repo@sha256:...`, or an image id `sha256:...`); for a campaign's job, the
/// campaign's image (which its `software_version` carries until an attempt reports what ran), when
/// it names one. Other jobs run the job type's image.
fn pinned_image(job: &Job) -> Option<&str> {
    let version = job.software_version.as_deref()?;
    let digest = version.contains("@sha256:") || version.starts_with("sha256:");
    let image_reference =
        !version.is_empty() && !version.chars().any(|c| c.is_whitespace() || c.is_control());
    if job.retry_of.is_some() && digest {
        return Some(version);
    }
    (job.campaign_id.is_some() && image_reference).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locations(eodata: &str, output: &str) -> TaskLocations {
        TaskLocations {
            eodata_url: eodata.into(),
            output_url: output.into(),
            inputs: InputRoots::new(eodata, output, &[]).0,
            flavors: vec![],
        }
    }

    #[test]
    fn catalogue_paths_map_to_the_eodata_store_relative_ones_to_the_output_store() {
        let l = locations("s3://eodata", "s3://hrsi/");
        assert_eq!(
            l.input_url("/eodata/Sentinel-2/MSI/L1C/2021/x.SAFE")
                .unwrap(),
            "s3://eodata/Sentinel-2/MSI/L1C/2021/x.SAFE"
        );
        assert_eq!(l.output_prefix_url("/FSC/2021/"), "s3://hrsi/FSC/2021/");
        // What an earlier job wrote, named relative to the output store.
        assert_eq!(
            l.input_url("32TLR/L2A/S2B_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T122408")
                .unwrap(),
            "s3://hrsi/32TLR/L2A/S2B_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T122408"
        );
        // A URL outside the stores is refused, naming it.
        let err = l.input_url("file:///data/x.SAFE").unwrap_err().to_string();
        assert!(err.contains("\"file:///data/x.SAFE\" refused"), "{err}");
    }

    #[test]
    fn products_of_the_output_store_are_read_from_its_root() {
        // Workers report a product's path inside the store: bucket-relative for S3, from the file
        // system root for files.
        let s3 = locations("s3://eodata", "s3://hrsi/products");
        assert_eq!(
            s3.input_url("outputs:products/FSC/2021/x").unwrap(),
            "s3://hrsi/products/FSC/2021/x"
        );
        let files = locations("s3://eodata", "file:///tmp/out");
        assert_eq!(
            files.input_url("outputs:tmp/out/FSC/x").unwrap(),
            "file:///tmp/out/FSC/x"
        );
        // ... but only below the output URL: the store's root is not the output store.
        assert!(files.input_url("outputs:root/secret").is_err());
    }

    #[test]
    fn a_task_reading_outside_the_stores_is_not_built() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "id": 1, "uid": uuid::Uuid::nil(), "job_type": "fsc_rlie", "name": "n",
            "product_id": null, "tile_id": null, "input_path": null, "measured_at": null,
            "input_published_at": null, "output_path": null, "output_published_at": null,
            "priority": "nrt", "status": "queued", "status_changed_at": "2021-04-13T10:10:21Z",
            "status_error_subtype": null, "status_message": null, "params": {}, "results": null,
            "attempt": 1, "max_attempts": 3, "next_attempt_at": null, "parent_id": null,
            "spawned_by": null, "retry_of": null, "depends_on": null, "recheck_at": null,
            "software_version": null, "executor_ref": null, "service_id": null,
            "tag": null, "lease_expires_at": null, "created_at": "2021-04-13T10:10:21Z"
        }))
        .unwrap();
        let mut l = locations("s3://eodata", "s3://hrsi/products");
        l.flavors = swath_domain::flavor::default_flavors();
        let task = |l2a: &str| -> WorkerTask {
            serde_json::from_value(serde_json::json!({
                "job_id": 1, "job_type": "fsc_rlie", "attempt": 1, "image": "si", "command": [],
                "inputs": [
                    {"name": "S2B_L1C", "source": "/eodata/S2/x.SAFE", "required": true},
                    {"name": "l2a", "source": l2a, "required": true}
                ],
                "outputs": [], "flavor": "eo1.xsmall", "timeout_secs": 60, "network": false,
                "exit_codes": {"rules": []}, "parameters": {}
            }))
            .unwrap()
        };
        // An L2A from params (the time series' previous product) pointing at the host.
        for l2a in ["file:///root", "products/../../../etc", "/root"] {
            let err = l.attempt_task(&job, task(l2a)).unwrap_err();
            assert!(
                matches!(&err, TaskBuildError::InputRefused { name, refused } if name == "l2a" && refused.input == l2a),
                "{err}"
            );
        }
        let built = l.attempt_task(&job, task("32TLR/L2A/x")).unwrap();
        assert_eq!(
            built.task.inputs[1].source,
            "s3://hrsi/products/32TLR/L2A/x"
        );
    }

    #[test]
    fn only_retries_are_pinned_and_only_to_image_references() {
        let mut job: Job = serde_json::from_value(serde_json::json!({
            "id": 1, "uid": uuid::Uuid::nil(), "job_type": "test_job", "name": "n",
            "product_id": null, "tile_id": null, "input_path": null, "measured_at": null,
            "input_published_at": null, "output_path": null, "output_published_at": null,
            "priority": "nrt", "status": "ready", "status_changed_at": "2021-04-13T10:10:21Z",
            "status_error_subtype": null, "status_message": null, "params": {}, "results": null,
            "attempt": 1, "max_attempts": 3, "next_attempt_at": null, "parent_id": null,
            "spawned_by": null, "retry_of": null, "depends_on": null, "recheck_at": null,
            "software_version": "registry/si@sha256:abc", "executor_ref": null, "service_id": null,
            "tag": null, "lease_expires_at": null, "created_at": "2021-04-13T10:10:21Z"
        }))
        .unwrap();
        assert_eq!(pinned_image(&job), None, "not a retry");
        job.retry_of = Some(7);
        assert_eq!(pinned_image(&job), Some("registry/si@sha256:abc"));
        job.software_version = Some("git 1a2b3c".into());
        assert_eq!(pinned_image(&job), None, "not an image");
    }
}
