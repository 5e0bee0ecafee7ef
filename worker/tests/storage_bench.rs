//! `bench stage` on a small object set: rclone and the worker copy the same objects from the
//! in-process S3 server, and both copies are checked.

mod support;

use swath_worker::bench::{measure_stage_bench, StageBenchArgs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_bench_compares_with_rclone_on_the_same_objects() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Clients) {
        return;
    }
    let rclone = support::require_tool("/usr/bin/rclone", "rclone");
    let args = StageBenchArgs {
        objects: 6,
        size_mb: 1,
        parallelism: 2,
        rounds: 1,
        rclone,
        work_dir: None,
    };
    let report = support::within(180, "the bench", measure_stage_bench(&args))
        .await
        .unwrap();
    assert_eq!(report.objects, 6);
    assert_eq!(report.bytes, 6 * 1024 * 1024);
    assert!(report.rclone_mb_s() > 0.0 && report.ours_mb_s() > 0.0);
    assert!(report.ratio().is_finite());
}
