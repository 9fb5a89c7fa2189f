//! The Kubernetes manifests (deploy/kubernetes/): valid against the Kubernetes schemas (`kubernetes-validate
//! --strict`), no failed `checkov` check and every skipped one with its reason, and consistent with the collector:
//! the ConfigMap's config validates with the Secret's files where the StatefulSet mounts them, the grace period
//! covers the stop (drain + 2 s), the probes ask the port the config serves.
//!
//! The tools live in the virtual environment scripts/install-deps.sh makes (checkov pins versions of boto3 that
//! the AWS test peers must not get); `LOGFERRY_K8S_TOOLS` names another directory holding them.

use logferry::config::ConfigFile;
use logferry_testkit::TempDir;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFESTS: [&str; 6] = [
    "namespace.yaml",
    "configmap.yaml",
    "secret.yaml",
    "service.yaml",
    "networkpolicy.yaml",
    "statefulset.yaml",
];

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

fn tool(name: &str) -> PathBuf {
    let dir = std::env::var("LOGFERRY_K8S_TOOLS")
        .unwrap_or_else(|_| "/opt/logferry-k8s-tools/bin".to_owned());
    let path = Path::new(&dir).join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-deps.sh (it installs kubernetes-validate and checkov there)",
        path.display()
    );
    path
}

fn manifest(name: &str) -> Value {
    let text = std::fs::read_to_string(manifests_dir().join(name)).unwrap();
    ConfigFile::parse(&text, false).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_manifest_is_valid_against_the_kubernetes_schemas() {
    let out = Command::new(tool("kubernetes-validate"))
        .arg("--strict")
        .args(MANIFESTS)
        .current_dir(manifests_dir())
        .output()
        .expect("kubernetes-validate");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for name in MANIFESTS {
        assert!(
            text.contains(&format!("INFO {name} passed")),
            "{name}:\n{text}"
        );
    }
}

#[test]
fn checkov_finds_no_failed_check_and_every_skip_has_its_reason() {
    let out = Command::new(tool("checkov"))
        .args([
            "-d",
            ".",
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--quiet",
            "--skip-download",
        ])
        .current_dir(manifests_dir())
        .output()
        .expect("checkov");
    let text = String::from_utf8_lossy(&out.stdout);
    let report: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("checkov's JSON ({e}):\n{text}"));
    let results = &report["results"];
    let failed: Vec<String> = results["failed_checks"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|c| format!("{} {} ({})", c["check_id"], c["check_name"], c["resource"]))
        .collect();
    assert!(
        failed.is_empty(),
        "failed checkov checks:\n{}",
        failed.join("\n")
    );
    assert!(
        report["summary"]["passed"].as_u64().unwrap_or(0) > 50,
        "{}",
        report["summary"]
    );
    for skipped in results["skipped_checks"].as_array().unwrap_or(&Vec::new()) {
        let reason = skipped["check_result"]["suppress_comment"]
            .as_str()
            .unwrap_or("");
        assert!(
            reason.len() > 20,
            "{} is skipped without a reason in the manifest: {reason:?}",
            skipped["check_id"]
        );
    }
}

#[test]
fn the_manifests_agree_with_the_collector() {
    let config_map = manifest("configmap.yaml");
    let secret = manifest("secret.yaml");
    let set = manifest("statefulset.yaml");
    let pod = &set["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let mount = |volume: &str| -> String {
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume)
            .and_then(|m| m["mountPath"].as_str())
            .unwrap_or_else(|| panic!("no mount of volume {volume}"))
            .to_owned()
    };
    // Where the StatefulSet puts the config and the credentials, relative to each other.
    let config_path = mount("config");
    let secrets_path = mount("credentials");
    assert_eq!(config_path, "/etc/logferry/config.yaml");
    let config_dir = Path::new(&config_path).parent().unwrap();
    let secrets_relative = Path::new(&secrets_path)
        .strip_prefix(config_dir)
        .expect("secrets under the config's dir");
    assert_eq!(
        container["args"],
        serde_json::json!(["run", "--config", config_path]),
        "the container runs the mounted config"
    );

    // The config, with the Secret's keys as files where they are mounted: `logferry validate` accepts it.
    let dir = TempDir::new("k8s-config");
    let config_text = config_map["data"]["config.yaml"]
        .as_str()
        .expect("config.yaml in the ConfigMap");
    std::fs::write(dir.path().join("config.yaml"), config_text).unwrap();
    std::fs::create_dir_all(dir.path().join(secrets_relative)).unwrap();
    for (key, value) in secret["stringData"].as_object().expect("stringData") {
        std::fs::write(
            dir.path().join(secrets_relative).join(key),
            value.as_str().unwrap(),
        )
        .unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["validate", "--config"])
        .arg(dir.path().join("config.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Without the Secret's files, every reference names its field and its file.
    std::fs::remove_dir_all(dir.path().join(secrets_relative)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["validate", "--config"])
        .arg(dir.path().join("config.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("(referenced as ${file:...})").count(),
        secret["stringData"].as_object().unwrap().len(),
        "{text}"
    );

    // The stop fits the grace period; the probes ask what the config serves; the state is the volume.
    let config = ConfigFile::parse(config_text, false).unwrap();
    let globals = &config["globals"];
    let drain = globals["stop_drain_timeout_in_sec"]
        .as_u64()
        .expect("the drain is explicit");
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace > drain + 2,
        "grace {grace} s must exceed the stop bound {drain} + 2 s"
    );
    let listen = globals["metrics"]["listen"].as_str().unwrap();
    assert!(
        listen.starts_with("0.0.0.0:"),
        "probes come from outside the pod: {listen}"
    );
    let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(container["ports"][0]["containerPort"].as_u64(), Some(port));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(
        globals["persistence"]["directory"].as_str(),
        Some(mount("state").as_str())
    );
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "state"
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsNonRoot"], true);
}
