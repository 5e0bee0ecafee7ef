//! From a job type's task to an attempt's: storage locations resolved to the URLs workers use, the
//! flavor's limits, and the image a retry is pinned to.

use swath_job_types::children::OUTPUT_STORE_SOURCE;
use swath_job_types::flavor::WorkerFlavor;
use swath_job_types::protocol::AttemptTask;
use swath_job_types::template::WorkerTask;
use swath_job_types::Job;

/// Where workers read and write, and the flavor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLocations {
    /// Where catalogue paths under `/eodata/` are read from (`s3://bucket` or `file:///dir`).
    pub eodata_url: String,
    /// Where products are uploaded (`s3://bucket/prefix` or `file:///dir`).
    pub output_url: String,
    /// The flavor table.
    pub flavors: Vec<WorkerFlavor>,
}

impl TaskLocations {
    /// The URL a worker stages an input from: catalogue paths under `/eodata/` are read from
    /// `eodata_url`; products of the output store (`outputs:<path in the store>`, see
    /// [`swath_job_types::children::OUTPUT_STORE_SOURCE`]) from the store's root; relative paths
    /// name what an earlier job wrote under the output URL (e.g. the L2A a time series continues
    /// from); URLs and other paths are kept as they are.
    pub fn input_url(&self, source: &str) -> String {
        if let Some(path) = source.strip_prefix(OUTPUT_STORE_SOURCE) {
            return format!(
                "{}/{}",
                store_root(&self.output_url),
                path.trim_start_matches('/')
            );
        }
        if let Some(rest) = source.strip_prefix("/eodata/") {
            format!("{}/{rest}", self.eodata_url.trim_end_matches('/'))
        } else if source.contains("://") || source.starts_with('/') {
            source.to_string()
        } else {
            self.output_prefix_url(source)
        }
    }

    /// The URL under which a worker uploads products of a job type's `prefix`.
    pub fn output_prefix_url(&self, prefix: &str) -> String {
        format!(
            "{}/{}",
            self.output_url.trim_end_matches('/'),
            prefix.trim_start_matches('/')
        )
    }

    /// The attempt's task: `task` with URLs, the job's uid and its flavor's limits.
    pub fn attempt_task(&self, job: &Job, mut task: WorkerTask) -> Result<AttemptTask, String> {
        let flavor = self
            .flavors
            .iter()
            .find(|f| f.name == task.flavor)
            .ok_or_else(|| format!("flavor {:?} is not in the flavor table", task.flavor))?;
        for input in &mut task.inputs {
            input.source = self.input_url(&input.source);
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

/// The root of a store URL, which paths in the store are relative to (what workers report as a
/// product's `path`): the bucket of `s3://bucket/prefix`, the file system root of `file:///dir`.
fn store_root(url: &str) -> String {
    match url.split_once("://") {
        Some(("s3", rest)) => format!("s3://{}", rest.split('/').next().unwrap_or_default()),
        Some((scheme, _)) => format!("{scheme}://"),
        None => url.trim_end_matches('/').to_string(),
    }
}

/// The image a retry runs: the one its chain ran with (`software_version`), when that names an image
/// (`repo@sha256:...`, or an image id `sha256:...`). Other jobs run the job type's image.
fn pinned_image(job: &Job) -> Option<&str> {
    job.retry_of?;
    job.software_version
        .as_deref()
        .filter(|v| v.contains("@sha256:") || v.starts_with("sha256:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_paths_map_to_the_eodata_store_relative_ones_to_the_output_store_and_urls_stay() {
        let l = TaskLocations {
            eodata_url: "s3://eodata".into(),
            output_url: "s3://hrsi/".into(),
            flavors: vec![],
        };
        assert_eq!(
            l.input_url("/eodata/Sentinel-2/MSI/L1C/2021/x.SAFE"),
            "s3://eodata/Sentinel-2/MSI/L1C/2021/x.SAFE"
        );
        assert_eq!(l.input_url("file:///data/x.SAFE"), "file:///data/x.SAFE");
        assert_eq!(l.output_prefix_url("/FSC/2021/"), "s3://hrsi/FSC/2021/");
        // What an earlier job wrote, named relative to the output store.
        assert_eq!(
            l.input_url("32TLR/L2A/S2B_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T122408"),
            "s3://hrsi/32TLR/L2A/S2B_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T122408"
        );
    }

    #[test]
    fn products_of_the_output_store_are_read_from_its_root() {
        // Workers report a product's path inside the store: bucket-relative for S3, from the file
        // system root for files.
        let s3 = TaskLocations {
            eodata_url: "s3://eodata".into(),
            output_url: "s3://hrsi/products".into(),
            flavors: vec![],
        };
        assert_eq!(
            s3.input_url("outputs:products/FSC/2021/x"),
            "s3://hrsi/products/FSC/2021/x"
        );
        let files = TaskLocations {
            output_url: "file:///tmp/out".into(),
            ..s3
        };
        assert_eq!(
            files.input_url("outputs:tmp/out/FSC/x"),
            "file:///tmp/out/FSC/x"
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
