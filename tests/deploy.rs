//! The deploy files (Dockerfile, Kubernetes manifests, example configs) are validated in CI:
//! this runs `.ci/validate-deploy.sh` (hadolint, kubernetes-validate --strict against the
//! Kubernetes schemas, config cross-checks) with the binary under test for `check --config`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn deploy_files_validate() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/.ci/validate-deploy.sh"))
        .current_dir(root)
        .env("RESIDENCY_PROXY_BIN", env!("CARGO_BIN_EXE_residency-proxy"))
        .output()
        .expect("run bash .ci/validate-deploy.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "validate-deploy failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    // The binary was given, so the `check --config` step must have run, not been skipped.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("PASS") && l.contains("check --config")),
        "`residency-proxy check` did not run:\n{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
