//! From a job type's task to an attempt's: storage locations resolved to the URLs workers use, and
//! the flavor's limits.

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
    /// `eodata_url`; relative paths name what an earlier job wrote to the output store (e.g. the
    /// L2A a time series continues from); URLs and other paths are kept as they are.
    pub fn input_url(&self, source: &str) -> String {
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
        for output in &mut task.outputs {
            output.destination_prefix = self.output_prefix_url(&output.destination_prefix);
        }
        Ok(AttemptTask {
            uid: job.uid,
            cpus: flavor.cpus,
            memory_mb: flavor.memory_mb,
            task,
        })
    }
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
}
